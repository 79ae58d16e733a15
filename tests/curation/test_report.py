"""`thinkmix report`: the self-contained HTML page of a version, checked as a browser would see it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from curation.record import SYSTEM_PROMPTS, Record, record_id
from curation.report import decontam_hits, length_quantiles, report_data, write_report
from curation.store import Store

STAGES = [
    {"name": "source", "in": 8, "kept": 8, "rejected": 0, "failed": 0, "reasons": {}},
    {
        "name": "generators.multi_sample",
        "in": 8,
        "kept": 15,
        "rejected": 0,
        "failed": 1,
        "reasons": {"request_failed": 1},
    },
    {
        "name": "filters.math_verify",
        "in": 15,
        "kept": 12,
        "rejected": 3,
        "failed": 0,
        "reasons": {"math_answer_mismatch": 2, "no_boxed": 1},
    },
    {
        "name": "decontam.ngram",
        "in": 12,
        "kept": 9,
        "rejected": 3,
        "failed": 0,
        "reasons": {"contaminated_ngram": 3},
    },
]
# (category, reasoning, generator, output chars) of the 9 train rows
TRAIN = [
    ("math", "on", "DeepSeek-R1", 400),
    ("math", "on", "DeepSeek-R1", 800),
    ("math", "on", "DeepSeek-R1", 1200),
    ("math", "off", "Qwen2.5-Math-7B-Instruct", 40),
    ("math", "off", "Qwen2.5-Math-7B-Instruct", 80),
    ("code", "on", "DeepSeek-R1", 2000),
    ("code", "off", "Qwen2.5-Coder-32B-Instruct", 120),
    ("chat", "off", "Llama-3.3-70B-Instruct", 60),
    ("chat", "on", "DeepSeek-R1", 600),
]


def row(i: int, category: str, reasoning: str, generator: str, chars: int, **kw) -> Record:
    prompt = [{"role": "user", "content": f"Question {i}: what is {i} * 3?"}]
    think = "<think>" + "x" * max(chars - 30, 0) + "</think>" if reasoning == "on" else ""
    return Record(
        id=record_id(category, str(i), prompt, generator),
        input=prompt,
        output=(think + f"The answer is \\boxed{{{3 * i}}}.")[: max(chars, 1)].ljust(chars, "."),
        system_prompt=SYSTEM_PROMPTS[reasoning],
        reasoning=reasoning,
        category=category,
        generator=generator,
        license="cc-by-4.0" if category != "code" else "apache-2.0",
        source="tinyworld" if category != "chat" else "lmsys",
        source_id=str(i),
        expected_answer=str(3 * i),
        version="v1",
        used_in_training=["Nano", "Super"] if i % 2 else [],
        **kw,
    )


def contaminated(i: int, benchmark: str, item: str) -> Record:
    match = {"benchmark": benchmark, "item_id": item, "score": 0.9}
    return row(
        100 + i,
        "math",
        "on",
        "DeepSeek-R1",
        300,
        stage="decontam.ngram",
        reason="contaminated_ngram",
        meta={"decontam.ngram": json.dumps(match)},
        scores={"decontam.ngram": 0.9},
    )


def make_store(root: Path, dataset: str = "blend", version: str = "v1") -> Store:
    """A committed version with train rows of 3 categories, rejected and contaminated rows."""
    store = Store(root)
    staging = store.staging(dataset, version)
    train = [row(i, *spec) for i, spec in enumerate(TRAIN)]
    rejected = [
        row(50, "math", "on", "DeepSeek-R1", 90, stage="filters.math_verify", reason="no_boxed"),
        row(
            51,
            "math",
            "off",
            "Qwen2.5-Math-7B-Instruct",
            30,
            stage="filters.math_verify",
            reason="math_answer_mismatch",
        ),
        row(
            52,
            "math",
            "on",
            "DeepSeek-R1",
            500,
            stage="filters.math_verify",
            reason="math_answer_mismatch",
        ),
        contaminated(0, "math500", "test/algebra/1"),
        contaminated(1, "math500", "test/algebra/2"),
        contaminated(2, "aime24", "2024-I-3"),
    ]
    failed = [
        row(
            60,
            "math",
            "on",
            "DeepSeek-R1",
            0,
            stage="generators.multi_sample",
            reason="request_failed: HTTP 503",
        )
    ]
    shards = [(train[:5], rejected[:3], []), (train[5:], rejected[3:], failed)]
    for k, (t, r, f) in enumerate(shards):
        files = [
            staging.write_shard(s, k, rows)
            for s, rows in zip(("train", "rejected", "failed"), (t, r, f), strict=True)
        ]
        staging.mark_done(k, files)
    recipe = {
        "name": dataset,
        "sources": [{"type": "tinyworld.math", "count": 8, "seed": 0}],
        "teachers": {
            "reasoner": {
                "backend": "openai",
                "model": "deepseek-ai/DeepSeek-R1",
                "base_url": "http://127.0.0.1:8000/v1",
            }
        },
        "stages": [
            {"type": "generators.multi_sample", "teacher": "reasoner", "samples_on": 2},
            {"type": "filters.math_verify"},
            {"type": "decontam.ngram", "benchmarks": ["math500", "aime24"]},
        ],
        "shards": 2,
    }
    staging.commit(
        {
            "recipe": recipe,
            "recipe_hash": "0123456789abcdef0123456789abcdef",
            "thinkmix_version": "0.1.0",
            "code_revision": "abc123",
            "teachers": recipe["teachers"],
            "sampling": [
                {
                    "stage": "generators.multi_sample",
                    "teacher": "reasoner",
                    "temperature": 0.6,
                    "top_p": 0.95,
                    "max_tokens": 32768,
                }
            ],
            "shards": 2,
            "stages": STAGES,
            "usage": {
                "reasoner": {
                    "requests": 16,
                    "failed_requests": 1,
                    "prompt_tokens": 900,
                    "completion_tokens": 5200,
                    "cost_usd": 0.0123,
                }
            },
        }
    )
    return store


class _Page(HTMLParser):
    """Collects what a browser would fetch or show: tags, attributes, ids, text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str, str]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [(tag, k, v or "") for k, v in attrs]

    def handle_data(self, data):
        self.text.append(data)


def parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    page.close()
    return page


@pytest.fixture
def report(tmp_path: Path) -> tuple[Path, str]:
    store = make_store(tmp_path / "store")
    out = write_report(store, "blend", tmp_path / "out" / "report.html")
    return out, out.read_text(encoding="utf-8")


def test_page_has_every_section_and_plot(report) -> None:
    _, html = report
    page = parse(html)
    ids = {v for _, k, v in page.attrs if k == "id"}
    assert {"blend", "lengths", "funnel", "teachers", "decontam", "manifest"} <= ids
    plots = {v for tag, k, v in page.attrs if tag == "svg" and k == "data-plot"}
    assert plots == {"blend", "lengths", "funnel", "generators", "usage", "decontam"}
    text = " ".join(page.text)
    for expected in [
        "blend/v1",
        "math_answer_mismatch (2)",  # funnel top reason
        "contaminated_ngram (3)",
        "decontam.ngram",
        "math500",
        "aime24",
        "0123456789abcdef0123456789abcdef",  # recipe hash
        "5,200 completion tokens",
        "0.0123",  # cost
        "DeepSeek-R1",
        "Qwen2.5-Coder-32B-Instruct",
        "temperature=0.6",
    ]:
        assert expected in text, expected
    # 9 train rows: math 5 of 9 = 55.6%, 5 from DeepSeek-R1.
    assert "5 (55.6%)" in text
    assert re.search(r"\b9\b", text)


def test_page_is_self_contained(report) -> None:
    _, html = report
    page = parse(html)
    assert "script" not in page.tags and "link" not in page.tags and "img" not in page.tags
    for tag, key, value in page.attrs:
        if key in {"src", "href", "xlink:href", "srcset", "action", "data"}:
            assert value.startswith("#"), (tag, key, value)
    assert "@import" not in html and "url(" not in html


def test_numbers_behind_the_plots(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    hits = decontam_hits(store.read_table("blend/v1", "rejected"))
    assert sorted(hits["benchmark"].to_list()) == ["aime24", "math500", "math500"]
    assert set(hits["method"].to_list()) == {"ngram"}
    data = report_data(store, "blend/v1")
    assert data["decontam"][0] == {
        "benchmark": "math500",
        "rows": 2,
        "items": 2,
        "methods": "ngram",
    }
    assert data["decontam_rows"] == 3
    assert data["totals"] == {"train": 9, "rejected": 6, "failed": 1}
    gens = {g["generator"]: g["rows"] for g in data["generators"]}
    assert gens["DeepSeek-R1"] == 5 and sum(gens.values()) == 9
    lengths = {
        (g["category"], g["reasoning"]): g for g in length_quantiles(store.read_table("blend/v1"))
    }
    math_on = lengths[("math", "on")]  # 400, 800, 1200 chars -> 100, 200, 300 tokens
    assert (math_on["rows"], math_on["min"], math_on["p50"], math_on["max"]) == (3, 100, 200, 300)
    json.dumps(data)  # JSON-ready


def test_empty_version_still_renders(tmp_path: Path) -> None:
    store = Store(tmp_path)
    staging = store.staging("empty", "v1")
    staging.mark_done(0, [staging.write_shard(s, 0, []) for s in ("train", "rejected", "failed")])
    staging.commit({"recipe": {"name": "empty"}})
    html = write_report(store, "empty", tmp_path / "r.html").read_text()
    text = " ".join(parse(html).text)
    assert "The train split is empty." in text and "No row was dropped as contaminated." in text


def test_report_of_a_real_build(built_math, tmp_path: Path) -> None:
    _, store_dir, ref = built_math
    store = Store(store_dir)
    html = write_report(store, ref, tmp_path / "r.html").read_text()
    text = " ".join(parse(html).text)
    manifest = store.manifest(ref)
    assert manifest["recipe_hash"] in text
    for stage in manifest["stages"]:
        assert stage["name"] in text
    assert "reasoner" in text and "embedded" in text  # the teacher's usage row


def _screenshot(page: Path, shot: Path) -> bytes:
    """A 1200x2000 PNG of `page` rendered by headless Chromium."""
    profile = tempfile.mkdtemp()
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--screenshot={shot}",
        "--window-size=1200,2000",
    ]
    run = subprocess.run(
        ["chromium", *flags, page.as_uri()], capture_output=True, text=True, timeout=120
    )
    shutil.rmtree(profile, ignore_errors=True)
    assert shot.is_file(), run.stderr[-2000:]
    return shot.read_bytes()


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="needs chromium (apt-get install chromium)"
)
def test_chromium_renders_the_page(report, tmp_path: Path) -> None:
    path, _ = report
    data = _screenshot(path, path.with_suffix(".png"))
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1200, 2000)
    # A page Chromium could not lay out or draw compresses to almost nothing; tables, text and
    # six SVG plots do not.
    blank = tmp_path / "blank.html"
    blank.write_text("<!doctype html><title>blank</title>", encoding="utf-8")
    assert len(data) > 5 * len(_screenshot(blank, tmp_path / "blank.png"))
