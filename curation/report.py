"""`thinkmix report`: one self-contained HTML page that shows a dataset version (DESIGN §8).

The page has no external resource: CSS is inline and every plot is an inline SVG drawn here, so
it opens offline and can be mailed or attached as one file. Sections, each a plot plus the
numbers behind it:

- blend: share of train rows per category, split by the reasoning toggle;
- output lengths: estimated output tokens (`curation.stats.CHARS_PER_TOKEN`) per category and
  toggle, as box plots (whiskers p10-p90, box p25-p75, line at the median);
- funnel: per stage, rows in / kept / rejected / failed and the top reasons;
- teachers: generator shares of train, and requests / tokens / cost from `manifest["usage"]`;
- decontamination: rejected rows whose reason starts with `contaminated_`, by benchmark (the
  match is read from `meta[stage]`, JSON with `benchmark` and `item_id`, see decontam/base.py);
- manifest: recipe hash, code version, shards, splits, sampling, and the recipe itself.

Numbers come from `curation.stats` (`stats_dict`, `blend_table`, `funnel`); this module only
adds the length quantiles, the decontamination hits and the drawing.
"""

from __future__ import annotations

import json
import math
from html import escape
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from curation.stats import CHARS_PER_TOKEN, stats_dict
from curation.store import Store, atomic_write_bytes

CONTAMINATED = "contaminated_"
COLORS = {"on": "#4c78a8", "off": "#f58518", "kept": "#54a24b", "rejected": "#e45756"}
COLORS["failed"] = "#9d755d"
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)

# --- the numbers ---------------------------------------------------------------------------


def decontam_hits(rejected: pa.Table) -> pl.DataFrame:
    """One row per contaminated rejected row: id, stage, method, benchmark, item_id.

    `method` is the reason without `contaminated_`; a row whose `meta[stage]` holds no match
    record gets benchmark "(no match record)" so the gap shows instead of vanishing.
    """
    rows = []
    for r in rejected.select(["id", "stage", "reason", "meta"]).to_pylist():
        reason = r["reason"] or ""
        if not reason.startswith(CONTAMINATED):
            continue
        meta = {item["key"]: item["value"] for item in r["meta"] or []}
        match = json.loads(meta[r["stage"]]) if r["stage"] in meta else {}
        rows.append(
            {
                "id": r["id"],
                "stage": r["stage"] or "",
                "method": reason.removeprefix(CONTAMINATED),
                "benchmark": str(match.get("benchmark", "(no match record)")),
                "item_id": str(match.get("item_id", "")),
            }
        )
    schema = dict.fromkeys(["id", "stage", "method", "benchmark", "item_id"], pl.String)
    return pl.DataFrame(rows, schema=schema)


def decontam_summary(hits: pl.DataFrame) -> list[dict[str, Any]]:
    """Per benchmark: rows dropped, distinct items matched, methods; most rows first."""
    if hits.height == 0:
        return []
    return (
        hits.group_by("benchmark")
        .agg(
            pl.len().alias("rows"),
            pl.col("item_id").n_unique().alias("items"),
            pl.col("method").unique().sort().str.join(", ").alias("methods"),
        )
        .sort(["rows", "benchmark"], descending=[True, False])
        .to_dicts()
    )


def length_quantiles(train: pa.Table) -> list[dict[str, Any]]:
    """Per category x reasoning: rows, mean and p10/p25/p50/p75/p90/min/max output tokens (est.)."""
    if train.num_rows == 0:
        return []
    df = pl.from_arrow(train.select(["category", "reasoning", "output"]))
    assert isinstance(df, pl.DataFrame), "a pyarrow Table converts to a DataFrame"
    tok = (pl.col("output").fill_null("").str.len_chars() + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN
    quantiles = [tok.quantile(q, "linear").alias(f"p{round(q * 100)}") for q in QUANTILES]
    return (
        df.group_by(["category", "reasoning"])
        .agg(
            pl.len().alias("rows"),
            tok.mean().alias("mean"),
            tok.min().alias("min"),
            tok.max().alias("max"),
            *quantiles,
        )
        .sort(["category", "reasoning"])
        .to_dicts()
    )


def generator_mix(blend: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Train rows, share and estimated output tokens per generator, from the blend table."""
    mix: dict[str, dict[str, Any]] = {}
    for r in blend:
        g = mix.setdefault(r["generator"], {"generator": r["generator"], "rows": 0, "share": 0.0})
        g["rows"] += r["rows"]
        g["share"] += r["share"]
        g["output_tokens_est"] = g.get("output_tokens_est", 0) + r["output_tokens_est"]
    return sorted(mix.values(), key=lambda g: (-g["rows"], g["generator"]))


def report_data(store: Store, ref: str) -> dict[str, Any]:
    """Everything the page shows, JSON-ready (the card reuses it)."""
    stats = stats_dict(store, ref)
    manifest = store.manifest(stats["ref"])
    train = store.read_table(stats["ref"], "train")
    hits = decontam_hits(store.read_table(stats["ref"], "rejected"))
    return {
        **stats,
        "manifest": manifest,
        "lengths": length_quantiles(train),
        "generators": generator_mix(stats["blend"]),
        "usage": manifest.get("usage", {}),
        "decontam": decontam_summary(hits),
        "decontam_rows": hits.height,
    }


# --- drawing -------------------------------------------------------------------------------

_LABEL_W, _BAR_W, _ROW_H, _PAD = 230, 520, 24, 8


def _svg(name: str, title: str, height: int, body: list[str]) -> str:
    width = _LABEL_W + _BAR_W + 210
    return (
        f'<svg class="plot" data-plot="{name}" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><title>{escape(title)}</title>{"".join(body)}</svg>'
    )


def _text(x: float, y: float, s: str, anchor: str = "start", cls: str = "") -> str:
    c = f' class="{cls}"' if cls else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{c}>{escape(s)}</text>'


def _rect(x: float, y: float, w: float, h: float, color: str, tip: str) -> str:
    return (
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{h}" fill="{color}">'
        f"<title>{escape(tip)}</title></rect>"
    )


def _legend(y: float, items: list[tuple[str, str]]) -> list[str]:
    out, x = [], _LABEL_W
    for label, color in items:
        out += [_rect(x, y - 10, 12, 12, color, label), _text(x + 16, y, label)]
        x += 24 + 8 * len(label)
    return out


def stacked_bars(
    name: str,
    title: str,
    rows: list[tuple[str, list[tuple[str, float]], str]],
    scale: float,
    legend: list[tuple[str, str]] | None = None,
) -> str:
    """Horizontal bars: (label, [(segment key, value)], text at the bar's end) per row.

    Segment colors come from COLORS (else a neutral blue); `scale` is the value of a full bar.
    """
    top = 24 if legend else 4
    body = _legend(16, legend) if legend else []
    for i, (label, segments, note) in enumerate(rows):
        y, x = top + i * _ROW_H, float(_LABEL_W)
        body.append(_text(_LABEL_W - _PAD, y + 16, label, "end"))
        for key, value in segments:
            w = _BAR_W * value / scale if scale else 0.0
            body.append(
                _rect(x, y + 4, w, _ROW_H - 8, COLORS.get(key, "#4c78a8"), f"{key}: {value:g}")
            )
            x += w
        body.append(_text(x + _PAD, y + 16, note, cls="note"))
    return _svg(name, title, top + len(rows) * _ROW_H + 4, body)


def _nice(x: float) -> float:
    """The smallest of 1, 2, 2.5, 4, 5, 10 x 10^k that is >= x (a round axis end)."""
    if x <= 0:
        return 1.0
    base = 10.0 ** math.floor(math.log10(x))
    return next(m * base for m in (1, 2, 2.5, 4, 5, 10) if m * base >= x)


def box_plot(name: str, title: str, groups: list[dict[str, Any]]) -> str:
    """One box per (category, reasoning): whiskers p10-p90, box p25-p75, median line, mean dot."""
    if not groups:
        return ""
    hi = _nice(max(g["p90"] for g in groups))
    top, axis = 8, 28

    def px(v: float) -> float:
        return _LABEL_W + _BAR_W * min(v, hi) / hi

    body = []
    for i, g in enumerate(groups):
        y = top + i * _ROW_H
        mid, color = y + _ROW_H / 2, COLORS.get(g["reasoning"], "#4c78a8")
        tip = f"p10 {g['p10']:.0f}, p25 {g['p25']:.0f}, median {g['p50']:.0f}, p75 {g['p75']:.0f}, p90 {g['p90']:.0f}"
        body += [
            _text(_LABEL_W - _PAD, mid + 5, f"{g['category']} / {g['reasoning']}", "end"),
            f'<line x1="{px(g["p10"]):.1f}" x2="{px(g["p90"]):.1f}" y1="{mid}" y2="{mid}" class="whisker"/>',
            _rect(px(g["p25"]), y + 5, px(g["p75"]) - px(g["p25"]), _ROW_H - 10, color, tip),
            f'<line x1="{px(g["p50"]):.1f}" x2="{px(g["p50"]):.1f}" y1="{y + 4}" y2="{y + _ROW_H - 4}" class="median"/>',
            f'<circle cx="{px(g["mean"]):.1f}" cy="{mid}" r="3" class="mean"><title>mean {g["mean"]:.1f}</title></circle>',
            _text(_LABEL_W + _BAR_W + _PAD, mid + 5, f"median {g['p50']:.0f}", cls="note"),
        ]
    y = top + len(groups) * _ROW_H + 4
    body.append(f'<line x1="{_LABEL_W}" x2="{_LABEL_W + _BAR_W}" y1="{y}" y2="{y}" class="axis"/>')
    for k in range(5):
        v = hi * k / 4
        body.append(_text(px(v), y + 16, f"{v:.0f}", "middle", "note"))
    body.append(_text(_LABEL_W - _PAD, y + 16, "tokens (est.)", "end", "note"))
    return _svg(name, title, y + axis, body)


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """An HTML table; numbers are right-aligned."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    lines = []
    for row in rows:
        cells = []
        for v in row:
            num = isinstance(v, int | float) and not isinstance(v, bool)
            cells.append(f'<td class="num">{_fmt(v)}</td>' if num else f"<td>{escape(str(v))}</td>")
        lines.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>"


def _fmt(v: float) -> str:
    return f"{v:,}" if isinstance(v, int) else f"{v:,.1f}"


def _n(count: int, word: str) -> str:
    return f"{count:,} {word}" + ("" if count == 1 else "s")


def _pct(x: float) -> str:
    return f"{x:.1%}"


# --- sections ------------------------------------------------------------------------------


def _section(key: str, title: str, *parts: str) -> str:
    return f'<section id="{key}"><h2>{escape(title)}</h2>{"".join(p for p in parts if p)}</section>'


def _empty(text: str) -> str:
    return f'<p class="empty">{escape(text)}</p>'


def blend_section(data: dict[str, Any]) -> str:
    per_cat: dict[str, dict[str, int]] = {}
    for r in data["blend"]:
        cat = per_cat.setdefault(r["category"], {})
        cat[r["reasoning"]] = cat.get(r["reasoning"], 0) + r["rows"]
    total = sum(sum(c.values()) for c in per_cat.values())
    if not total:
        return _section("blend", "Blend (train)", _empty("The train split is empty."))
    toggles = sorted({t for c in per_cat.values() for t in c}, key=lambda t: (t != "on", t))
    bars = [
        (
            cat,
            [(t, c.get(t, 0)) for t in toggles],
            f"{sum(c.values()):,} ({_pct(sum(c.values()) / total)})",
        )
        for cat, c in sorted(per_cat.items(), key=lambda kv: -sum(kv[1].values()))
    ]
    legend = [(f"reasoning {t}", COLORS.get(t, "#4c78a8")) for t in toggles]
    plot = stacked_bars(
        "blend",
        "train rows per category and reasoning toggle",
        bars,
        max(sum(c.values()) for c in per_cat.values()),
        legend,
    )
    rows = [
        [
            r["category"],
            r["reasoning"],
            r["generator"],
            r["rows"],
            _pct(r["share"]),
            r["output_tokens_est"],
            r["mean_output_tokens_est"],
        ]
        for r in data["blend"]
    ]
    head = [
        "category",
        "reasoning",
        "generator",
        "rows",
        "share",
        "tokens (est.)",
        "mean tokens (est.)",
    ]
    return _section("blend", "Blend (train)", plot, table(head, rows))


def lengths_section(data: dict[str, Any]) -> str:
    groups = data["lengths"]
    if not groups:
        return _section("lengths", "Output lengths", _empty("The train split is empty."))
    note = (
        f"<p>Estimated output tokens (characters / {CHARS_PER_TOKEN}, rounded up). Whiskers span "
        "p10 to p90, the box p25 to p75; the line is the median, the dot the mean.</p>"
    )
    rows = [
        [
            g["category"],
            g["reasoning"],
            g["rows"],
            g["mean"],
            *(g[f"p{round(q * 100)}"] for q in QUANTILES),
            g["min"],
            g["max"],
        ]
        for g in groups
    ]
    head = [
        "category",
        "reasoning",
        "rows",
        "mean",
        "p10",
        "p25",
        "median",
        "p75",
        "p90",
        "min",
        "max",
    ]
    plot = box_plot("lengths", "output tokens (est.) per category and reasoning toggle", groups)
    return _section("lengths", "Output lengths", note, plot, table(head, rows))


def funnel_section(data: dict[str, Any]) -> str:
    stages = data["funnel"]
    if not stages:
        return _section("funnel", "Filter funnel", _empty("The manifest lists no stages."))
    scale = max(max(s["in"], s["kept"] + s["rejected"] + s["failed"]) for s in stages) or 1
    bars = [
        (
            s["stage"],
            [("kept", s["kept"]), ("rejected", s["rejected"]), ("failed", s["failed"])],
            f"in {s['in']:,}",
        )
        for s in stages
    ]
    legend = [(k, COLORS[k]) for k in ("kept", "rejected", "failed")]
    plot = stacked_bars("funnel", "rows kept, rejected and failed per stage", bars, scale, legend)
    rows = [
        [
            s["stage"],
            s["in"],
            s["kept"],
            s["rejected"],
            s["failed"],
            ", ".join(f"{r['reason']} ({r['count']})" for r in s["top_reasons"]) or "-",
        ]
        for s in stages
    ]
    return _section(
        "funnel",
        "Filter funnel",
        plot,
        table(["stage", "in", "kept", "rejected", "failed", "top reasons"], rows),
    )


def teachers_section(data: dict[str, Any]) -> str:
    gens = data["generators"]
    parts = []
    if gens:
        bars = [
            (
                g["generator"] or "(none)",
                [("share", g["rows"])],
                f"{g['rows']:,} ({_pct(g['share'])})",
            )
            for g in gens
        ]
        parts.append("<h3>Generators of train rows</h3>")
        parts.append(
            stacked_bars(
                "generators", "train rows per generator", bars, max(g["rows"] for g in gens)
            )
        )
    else:
        parts.append(_empty("No train rows, so no generator shares."))
    teachers = data["manifest"].get("teachers", {})
    usage = data["usage"]
    if usage:
        head = [
            "teacher",
            "backend",
            "model",
            "requests",
            "failed requests",
            "prompt tokens",
            "completion tokens",
            "cost (USD)",
        ]
        rows = []
        for name, u in sorted(usage.items()):
            spec = teachers.get(name, {})
            cost = u.get("cost_usd")
            rows.append(
                [
                    name,
                    spec.get("backend", "?"),
                    spec.get("model", "?"),
                    u.get("requests", 0),
                    u.get("failed_requests", 0),
                    u.get("prompt_tokens", 0),
                    u.get("completion_tokens", 0),
                    "-" if cost is None else f"{cost:.4f}",
                ]
            )
        bars = [
            (
                name,
                [("share", u.get("completion_tokens", 0))],
                f"{u.get('completion_tokens', 0):,} completion tokens",
            )
            for name, u in sorted(usage.items())
        ]
        scale = max(u.get("completion_tokens", 0) for u in usage.values()) or 1
        parts += [
            "<h3>Teacher usage</h3>",
            stacked_bars("usage", "completion tokens per teacher", bars, scale),
            table(head, rows),
        ]
    else:
        parts.append(_empty("The manifest records no teacher usage."))
    return _section("teachers", "Teacher mix", *parts)


def decontam_section(data: dict[str, Any]) -> str:
    summary = data["decontam"]
    stages = [
        s["type"]
        for s in data["manifest"].get("recipe", {}).get("stages", [])
        if s.get("type", "").startswith("decontam.")
    ]
    ran = f"<p>Decontamination stages in the recipe: {escape(', '.join(stages)) or 'none'}.</p>"
    if not summary:
        return _section(
            "decontam", "Decontamination", ran, _empty("No row was dropped as contaminated.")
        )
    bars = [
        (
            s["benchmark"],
            [("rejected", s["rows"])],
            f"{_n(s['rows'], 'row')}, {_n(s['items'], 'item')}",
        )
        for s in summary
    ]
    plot = stacked_bars(
        "decontam", "rows dropped per benchmark", bars, max(s["rows"] for s in summary)
    )
    rows = [[s["benchmark"], s["rows"], s["items"], s["methods"]] for s in summary]
    return _section(
        "decontam",
        "Decontamination",
        ran,
        plot,
        table(["benchmark", "rows dropped", "items matched", "methods"], rows),
    )


def manifest_section(data: dict[str, Any]) -> str:
    m = data["manifest"]
    keys = [
        "dataset",
        "version",
        "created_at",
        "recipe_hash",
        "thinkmix_version",
        "code_revision",
        "recipe_file",
        "shards",
    ]
    rows = [[k, str(m.get(k, "-"))] for k in keys]
    rows.append(["rows per split", ", ".join(f"{s} {n:,}" for s, n in data["totals"].items())])
    rows.append(["overrides", ", ".join(m.get("overrides", [])) or "-"])
    rows.append(["parents", ", ".join(str(p) for p in m.get("parents", [])) or "-"])
    for s in m.get("sampling", []):
        rows.append(
            [
                f"sampling ({s.get('stage', '?')})",
                ", ".join(f"{k}={v}" for k, v in sorted(s.items()) if k != "stage"),
            ]
        )
    recipe = escape(json.dumps(m.get("recipe", {}), indent=2, sort_keys=True))
    details = f"<details><summary>recipe</summary><pre>{recipe}</pre></details>"
    return _section("manifest", "Manifest", table(["field", "value"], rows), details)


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1000px;color:#222;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
h3{font-size:15px;margin:16px 0 4px}.sub{color:#666;margin:0 0 8px}
nav a{margin-right:12px;color:#4c78a8;text-decoration:none}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin:16px 0}.card{border:1px solid #ddd;border-radius:6px;padding:8px 14px;min-width:110px}
.card b{display:block;font-size:20px}.card span{color:#666;font-size:12px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}th,td{border-bottom:1px solid #eee;padding:3px 10px;text-align:left}
th{background:#f6f6f6}td.num{text-align:right;font-variant-numeric:tabular-nums}
svg.plot{display:block;margin:8px 0;font-size:12px}svg text{fill:#333}svg text.note{fill:#666}
line.whisker{stroke:#555;stroke-width:1.5}line.median{stroke:#111;stroke-width:2}line.axis{stroke:#999}
circle.mean{fill:#fff;stroke:#111}.empty{color:#666;font-style:italic}
pre{background:#f6f6f6;padding:8px;overflow:auto;font-size:12px}
"""


def render_report(data: dict[str, Any]) -> str:
    """The HTML page for `report_data(...)`; no external resource is referenced."""
    m, totals = data["manifest"], data["totals"]
    tokens = sum(r["output_tokens_est"] for r in data["blend"])
    cards = [
        (f"{totals.get('train', 0):,}", "train rows"),
        (f"{totals.get('rejected', 0):,}", "rejected rows"),
        (f"{totals.get('failed', 0):,}", "failed rows"),
        (f"{tokens:,}", "train tokens (est.)"),
        (f"{data['decontam_rows']:,}", "contaminated rows"),
    ]
    card_html = "".join(
        f'<div class="card"><b>{v}</b><span>{escape(k)}</span></div>' for v, k in cards
    )
    sections = [
        blend_section,
        lengths_section,
        funnel_section,
        teachers_section,
        decontam_section,
        manifest_section,
    ]
    names = ["blend", "lengths", "funnel", "teachers", "decontam", "manifest"]
    nav = "".join(f'<a href="#{n}">{n}</a>' for n in names)
    sub = f"recipe {m.get('recipe_hash', '-')} · created {m.get('created_at', '-')} · thinkmix {m.get('thinkmix_version', '-')}"
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>thinkmix report: {escape(data['ref'])}</title><style>{_CSS}</style></head><body>"
        f'<h1>{escape(data["ref"])}</h1><p class="sub">{escape(sub)}</p><nav>{nav}</nav>'
        f'<div class="cards">{card_html}</div>{"".join(s(data) for s in sections)}</body></html>\n'
    )


def write_report(store: Store, ref: str, out: Path) -> Path:
    """Write the self-contained HTML report of version `ref` to `out`; returns `out`."""
    out = Path(out)
    atomic_write_bytes(out, render_report(report_data(store, ref)).encode("utf-8"))
    return out
