"""Toggle-compliance audit: does the model think when asked to, and only then?

Every prompt is answered greedily twice, under "detailed thinking on" and "detailed thinking
off" (arXiv 2505.00949 §3: one model, reasoning toggled by the system prompt). The report:

- **on**: the share of answers with a well-formed think block (`filters.think_format`'s "on"
  check: one non-empty `<think>...</think>` first, an answer after it), and the counts of the
  format reasons for the others;
- **off**: the share of answers that carry `<think>` or `</think>` anyway, and the share that
  pass the "off" check;
- **leakage**: how much step-by-step reasoning leaks into "off" answers. Per prompt,

      L = clip((len(off) - len(on_answer)) / len(on_think), 0, 1)
      M = min(1, max(0, markers(off) - markers(on_answer)) / 3)
      leak = 1                when the off answer has a think tag
             mean(L, M)       when L is defined (the on answer is well-formed and complete)
             M                otherwise

  with lengths in characters (stripped), `on_answer` the text after `</think>` of the "on"
  output and `on_think` the body of its think block: L is the share of the "on" reasoning's
  length that comes back in the "off" answer (0 when "off" is as short as the "on" final answer,
  1 when it is longer by the whole reasoning). `markers` counts reasoning markers: the words
  step, first(ly), then, next, finally, therefore, thus, hence, so, because, since, "let's",
  "let me", wait; numbered lines (`1.`, `2)`, `Step 3`); and lines holding an "=" (equation chains). Markers the
  "on" final answer itself needs do not count as leakage. The report gives the mean leak, the
  means of L and M, the median length ratio len(off) / len(on_answer) and the mean marker count;
- **judge** (optional): a teacher asked, per "off" answer, whether it shows step-by-step
  reasoning (yes/no read by `filters.judge.parse_verdict`); its share of "yes";
- **instructions**: for prompts with constraints (`filters.instructions` format), the share
  of answers meeting all of them, per toggle.

`toggle_audit` takes a model dir or "embedded" (decoded by the `transformers` backend, as
`thinkmix train eval` does), or a loaded model + tokenizer (decoded by `model.generate`), so the
trainers can run it on the weights they hold (`ToggleAudit.callback()`: before and after
training). Both decode greedily and give the same text.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from curation.record import SYSTEM_PROMPTS, Message, Record
from filters.answers import THINK_CLOSE, THINK_OPEN, strip_think
from filters.format import ThinkFormat
from filters.instructions import check_constraints, parse_constraints

MARKER_SATURATION = 3  # markers at which M reaches 1
_MARKER_WORDS = re.compile(
    r"\b(?:step|first|firstly|then|next|finally|therefore|thus|hence|so|because|since|"
    r"let's|let me|wait)\b",
    re.IGNORECASE,
)
_NUMBERED = re.compile(r"^\s*(?:\d+[.)]|step\s*\d+\b)", re.IGNORECASE | re.MULTILINE)
_EQUATION_LINE = re.compile(r"^[^\n]*=[^\n]*$", re.MULTILINE)
JUDGE_PROMPT = (
    "Does this answer show step-by-step reasoning, rather than just giving the answer? "
    "Reply Yes or No.\n\nQuestion: {question}\n\nAnswer: {answer}"
)


def reasoning_markers(text: str) -> int:
    """Reasoning markers in `text`: marker words, numbered lines and lines with an "="."""
    return (
        len(_MARKER_WORDS.findall(text))
        + len(_NUMBERED.findall(text))
        + len(_EQUATION_LINE.findall(text))
    )


def leakage(on: str, off: str, on_complete: bool = True) -> dict[str, Any]:
    """One prompt's leak score and its parts (see the module docstring for the formula).

    `on_complete` False (the "on" answer hit the token limit): its final answer is cut short, so
    it gives no length reference and L is left undefined.
    """
    on_ok = on_complete and ThinkFormat._check_on(on) is True
    on_answer = strip_think(on) if on_ok else ""
    think_len = len(on.split(THINK_CLOSE, 1)[0].split(THINK_OPEN, 1)[-1].strip()) if on_ok else 0
    answer_len, off_len = len(on_answer), len(off.strip())
    length = None
    if think_len:  # a well-formed "on" answer always has a non-empty think body
        length = min(1.0, max(0.0, (off_len - answer_len) / think_len))
    extra = max(0, reasoning_markers(off) - reasoning_markers(on_answer))
    markers = min(1.0, extra / MARKER_SATURATION)
    has_think = THINK_OPEN in off or THINK_CLOSE in off
    if has_think:
        score = 1.0
    elif length is None:
        score = markers
    else:
        score = (length + markers) / 2
    return {
        "score": score,
        "length_term": length,
        "marker_term": markers,
        "markers": reasoning_markers(off),
        "length_ratio": off_len / answer_len if on_ok and answer_len else None,
    }


def _conversation(prompt: str | Sequence[Message], toggle: str) -> list[Message]:
    turns = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    turns = [{"role": m["role"], "content": m["content"]} for m in turns if m["role"] != "system"]
    return [{"role": "system", "content": SYSTEM_PROMPTS[toggle]}, *turns]


def generate_greedy(
    model: Any, tokenizer: Any, conversations: list[list[Message]], max_new_tokens: int,
    batch_size: int = 32,
) -> list[tuple[str, str]]:  # fmt: skip
    """(text, finish reason "stop" | "length") per conversation, greedy, left-padded batches."""
    import torch

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    encoded = [
        list(tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=True,
                                           return_dict=True)["input_ids"])
        for c in conversations
    ]  # fmt: skip
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    out: list[tuple[str, str]] = [("", "")] * len(encoded)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        for lo in range(0, len(order), batch_size):
            idx = order[lo : lo + batch_size]
            width = max(len(encoded[i]) for i in idx)
            ids = torch.full((len(idx), width), pad, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):
                ids[row, width - len(encoded[i]) :] = torch.tensor(encoded[i])
                mask[row, width - len(encoded[i]) :] = 1
            with torch.inference_mode():
                done = model.generate(
                    input_ids=ids.to(device), attention_mask=mask.to(device), do_sample=False,
                    max_new_tokens=max_new_tokens, pad_token_id=pad,
                    eos_token_id=tokenizer.eos_token_id, top_p=None, top_k=None, temperature=None,
                )  # fmt: skip
            for row, i in enumerate(idx):
                new = done[row, width:].tolist()
                stopped = tokenizer.eos_token_id in new
                if stopped:
                    new = new[: new.index(tokenizer.eos_token_id)]
                text = tokenizer.decode(new, skip_special_tokens=True)
                out[i] = (text, "stop" if stopped else "length")
    finally:
        model.train(was_training)
    return out


def _generate_from_dir(
    model: str, conversations: list[list[Message]], max_new_tokens: int, batch_size: int
) -> list[tuple[str, str]]:
    """A model dir through the `transformers` backend: the decoding loop `thinkmix train eval`
    uses (about twice as fast as `model.generate` on these tiny CPU models; same greedy text)."""
    from curation.generation import GenerationRequest, SamplingParams
    from generators.transformers_backend import TransformersBackend

    backend = TransformersBackend(model=model, batch_size=batch_size)
    greedy = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=max_new_tokens)
    responses = backend.generate_sync([GenerationRequest.build(c, greedy) for c in conversations])
    backend.close()
    return [(r.text, r.finish_reason) for r in responses]


def _judge(backend: Any, questions: list[str], answers: list[str]) -> list[bool | None]:
    """Asks `backend` (any thinkmix Backend) whether each answer shows its reasoning."""
    from curation.generation import GenerationRequest, SamplingParams
    from filters.judge import parse_verdict

    greedy = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=64)
    requests = [
        GenerationRequest.build(
            [{"role": "user", "content": JUDGE_PROMPT.format(question=q, answer=a)}], greedy
        )
        for q, a in zip(questions, answers, strict=True)
    ]
    responses = asyncio.run(backend.generate(requests))
    return [parse_verdict(r.text) if r.text else None for r in responses]


def _share(values: list[bool]) -> float:
    return round(sum(values) / len(values), 4) if values else 0.0


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(sum(present) / len(present), 4) if present else None


def toggle_audit(
    model: Any,
    prompts: Sequence[str | Sequence[Message] | dict[str, Any]],
    max_new_tokens: int = 320,
    tokenizer: Any = None,
    batch_size: int = 32,
    judge: Any = None,
    keep_rows: bool = False,
) -> dict[str, Any]:
    """Audit `model` (a model dir, "embedded", or a loaded HF model with `tokenizer`).

    `prompts`: user texts, message lists, or dicts with `messages` (or `prompt`) and optionally
    `constraints` and `id`. `judge`: an optional Backend asked about every "off" answer.
    Returns the report described in the module docstring; `rows` (per prompt: both answers and
    the leak parts) only with `keep_rows`.
    """
    if not prompts:
        raise ValueError("toggle audit: no prompts")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if not isinstance(model, str | Path) and tokenizer is None:
        raise ValueError("toggle audit: a loaded model needs its tokenizer")
    items = [p if isinstance(p, dict) else {"messages": p} for p in prompts]
    turns = [item.get("messages", item.get("prompt")) for item in items]
    conversations = [_conversation(t, toggle) for toggle in ("on", "off") for t in turns]
    start = time.monotonic()
    if isinstance(model, str | Path):
        answers = _generate_from_dir(str(model), conversations, max_new_tokens, batch_size)
    else:
        answers = generate_greedy(model, tokenizer, conversations, max_new_tokens, batch_size)
    seconds = time.monotonic() - start
    n = len(items)
    on, off = answers[:n], answers[n:]
    report = _summarise(items, turns, on, off, judge)
    report["max_new_tokens"] = max_new_tokens
    report["seconds"] = round(seconds, 1)
    if not keep_rows:
        report.pop("rows")
    return report


def _summarise(
    items: list[dict[str, Any]],
    turns: list[Any],
    on: list[tuple[str, str]],
    off: list[tuple[str, str]],
    judge: Any,
) -> dict[str, Any]:
    check = ThinkFormat()
    on_verdicts = [check.keep(Record(id="", input=[], output=t, reasoning="on")) for t, _ in on]
    off_verdicts = [check.keep(Record(id="", input=[], output=t, reasoning="off")) for t, _ in off]
    leaks = [leakage(a, b, fa == "stop") for (a, fa), (b, _) in zip(on, off, strict=True)]
    ratios = [x["length_ratio"] for x in leaks if x["length_ratio"] is not None]
    rows = [
        {"id": item.get("id", str(i)), "on": a, "off": b, **leak}
        for i, (item, (a, _), (b, _), leak) in enumerate(zip(items, on, off, leaks, strict=True))
    ]
    report: dict[str, Any] = {
        "prompts": len(items),
        "on": {
            "think_well_formed": _share([v is True for v in on_verdicts]),
            "reasons": dict(Counter(v.reason for v in on_verdicts if v is not True)),
            "truncated": _share([f == "length" for _, f in on]),
        },
        "off": {
            "think_present": _share([THINK_OPEN in t or THINK_CLOSE in t for t, _ in off]),
            "clean": _share([v is True for v in off_verdicts]),
            "truncated": _share([f == "length" for _, f in off]),
        },
        "leakage": {
            "score": _mean([x["score"] for x in leaks]),
            "length_term": _mean([x["length_term"] for x in leaks]),
            "marker_term": _mean([x["marker_term"] for x in leaks]),
            "length_ratio_median": round(statistics.median(ratios), 4) if ratios else None,
            "markers_per_answer": _mean([float(x["markers"]) for x in leaks]),
        },
        "rows": rows,
    }
    constrained = [i for i, item in enumerate(items) if item.get("constraints")]
    if constrained:
        report["instructions"] = {"prompts": len(constrained)}
        for toggle, answers in (("on", on), ("off", off)):
            met = [
                all(check_constraints(strip_think(answers[i][0]),
                                      parse_constraints(items[i]["constraints"])))
                for i in constrained
            ]  # fmt: skip
            report["instructions"][toggle] = _share(met)
    if judge is not None:
        questions = [t if isinstance(t, str) else t[-1]["content"] for t in turns]
        verdicts = _judge(judge, questions, [strip_think(t) or t for t, _ in off])
        parsed = [v for v in verdicts if v is not None]
        report["leakage"]["judge_leak_share"] = _share(parsed) if parsed else None
        report["leakage"]["judge_unparsed"] = len(verdicts) - len(parsed)
        for row, verdict in zip(rows, verdicts, strict=True):
            row["judge_leak"] = verdict
    return report


BUILT_IN_SETS = ("tinyworld", "ifeval")


def audit_prompts(data: str, limit: int, store: Any = None, seed: int | None = None) -> list[dict]:
    """Prompts for the audit: a built-in set or the unique prompts of a store version.

    - "tinyworld": held-out tinyworld tasks, the families in turn (seed: the eval seed);
    - "ifeval": `filters.constrained_prompts` (with constraints, so the report has
      `instructions`);
    - anything else: a version ref (`dataset/version`, an id, or a dataset) in `store`; its rows'
      prompt turns, first-seen order, with `meta["constraints"]` when present.
    """
    from curation.teacher.evaluate import EVAL_SEED

    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    seed = EVAL_SEED if seed is None else seed
    if data == "tinyworld":
        from curation.tinyworld import FAMILIES, generate

        per_family = -(-limit // len(FAMILIES))
        tasks = [generate(f, per_family, seed) for f in FAMILIES]
        ordered = [t for group in zip(*tasks, strict=True) for t in group][:limit]
        return [{"id": t.task_id, "prompt": t.prompt, "family": t.family} for t in ordered]
    if data == "ifeval":
        from filters.constrained_prompts import constrained_prompts

        return constrained_prompts(limit, seed)
    if store is None:
        raise ValueError(f"data {data!r} is not one of {', '.join(BUILT_IN_SETS)}: pass a store")
    dataset, version = store.resolve(data)
    seen: set[str] = set()
    out = []
    for record in store.read_records(f"{dataset}/{version}"):
        turns = [{"role": m["role"], "content": m["content"]} for m in record.input
                 if m["role"] != "system"]  # fmt: skip
        key = repr(turns)
        if key in seen or not turns:
            continue
        seen.add(key)
        item = {"id": record.id, "messages": turns}
        if record.meta.get("constraints"):
            item["constraints"] = record.meta["constraints"]
        out.append(item)
        if len(out) == limit:
            break
    if not out:
        raise ValueError(f"{dataset}/{version}: no prompts to audit")
    return out


def headline(report: dict[str, Any]) -> dict[str, float | None]:
    """The four numbers to compare before/after training."""
    return {
        "on_think_well_formed": report["on"]["think_well_formed"],
        "off_think_present": report["off"]["think_present"],
        "off_leakage": report["leakage"]["score"],
        "off_length_ratio_median": report["leakage"]["length_ratio_median"],
    }


class ToggleAudit:
    """The audit as an evaluation inside a trainer: `trainer.add_callback(audit.callback())`.

    Runs on the trainer's model at the start and the end of training (and every `every_steps`
    optimizer steps when > 0); `results` holds `{"step", "when", **headline}` per run, and the
    last full report is in `last`.
    """

    def __init__(self, prompts: Sequence[Any], max_new_tokens: int = 320, every_steps: int = 0):
        if every_steps < 0:
            raise ValueError(f"every_steps must be >= 0, got {every_steps}")
        self.prompts = list(prompts)
        self.max_new_tokens = max_new_tokens
        self.every_steps = every_steps
        self.results: list[dict[str, Any]] = []
        self.last: dict[str, Any] = {}

    def run(self, model: Any, tokenizer: Any, step: int, when: str) -> dict[str, Any]:
        self.last = toggle_audit(model, self.prompts, self.max_new_tokens, tokenizer=tokenizer)
        self.results.append({"step": step, "when": when, **headline(self.last)})
        return self.results[-1]

    def callback(self) -> Any:
        """A transformers `TrainerCallback` running this audit on the trained model."""
        from transformers import TrainerCallback

        audit = self

        class _Audit(TrainerCallback):
            def on_train_begin(self, args, state, control, model=None, processing_class=None,
                               **kwargs):  # fmt: skip
                audit.run(model, processing_class, state.global_step, "begin")

            def on_step_end(self, args, state, control, model=None, processing_class=None,
                            **kwargs):  # fmt: skip
                if audit.every_steps and state.global_step % audit.every_steps == 0:
                    audit.run(model, processing_class, state.global_step, "step")

            def on_train_end(self, args, state, control, model=None, processing_class=None,
                             **kwargs):  # fmt: skip
                audit.run(model, processing_class, state.global_step, "end")

        return _Audit()


def trainer_audit(prompts: int, max_new_tokens: int = 320) -> ToggleAudit | None:
    """The audit a trainer runs at train begin and end (config `audit_prompts`; 0 = none)."""
    return ToggleAudit(audit_prompts("tinyworld", prompts), max_new_tokens) if prompts else None


def audit_callbacks(audit: ToggleAudit | None) -> list[Any]:
    return [audit.callback()] if audit else []


__all__ = [
    "BUILT_IN_SETS",
    "MARKER_SATURATION",
    "ToggleAudit",
    "audit_callbacks",
    "audit_prompts",
    "generate_greedy",
    "trainer_audit",
    "headline",
    "leakage",
    "reasoning_markers",
    "toggle_audit",
]
