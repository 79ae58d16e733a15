r"""The re-filter of `refilter.py` written as a datatrove pipeline (run by a peer venv's python).

Reads every `*.jsonl` in INPUT_DIR (`output` as the document text, the other columns as
metadata) and applies, in this order, the same checks as thinkmix's `filters.think_format`,
`filters.quality` (defaults, no tokenizer) and `filters.boxed_answer` (last box), each a
`BaseFilter` with a `JsonlWriter` exclusion writer for its rejects; the kept rows go to a
`JsonlWriter` too (uncompressed, like the rejects: the input is uncompressed jsonl). The logic
is copied, not imported: datatrove's venv does not hold thinkmix. Prints one JSON line:
`{"kept": N, "rejected": {REASON: N, ...}}`.

    VENV/bin/python benchmarks/_datatrove_refilter.py INPUT_DIR OUTPUT_DIR --tasks 1 --workers 1

datatrove splits work by file, so `--tasks T` needs at least T input files to use T workers.
Its `JsonlReader` needs `orjson` and its filters package `regex`: `pip install datatrove orjson
regex`.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from collections import Counter
from pathlib import Path

from datatrove.data import Document
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter

OPEN, CLOSE = "<think>", "</think>"
WORDS = re.compile(r"\w+", re.UNICODE)
BOX = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")


def strip_think(output: str) -> str:
    if CLOSE in output:
        return output.rsplit(CLOSE, 1)[1].strip()
    if OPEN in output:
        return ""
    return output.strip()


class ThinkFormat(BaseFilter):
    name = "think_format"

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        output, reasoning = doc.text, doc.metadata.get("reasoning")
        if reasoning == "off":
            if OPEN in output or CLOSE in output:
                return False, "format_think_when_off"
            return (False, "format_empty_answer") if not output.strip() else True
        if reasoning != "on":
            return False, "format_reasoning_unknown"
        opens, closes = output.count(OPEN), output.count(CLOSE)
        if opens == 0 and closes == 0:
            return False, "format_missing_think"
        if opens != closes:
            return False, "format_unbalanced_think"
        if opens > 1:
            return False, "format_multiple_think"
        text = output.lstrip()
        if not text.startswith(OPEN):
            before = text.find(OPEN) < text.find(CLOSE)
            return False, "format_missing_think" if before else "format_unbalanced_think"
        body, answer = text[len(OPEN) :].split(CLOSE, 1)
        if not body.strip():
            return False, "format_empty_think"
        return (False, "format_empty_answer") if not answer.strip() else True


class Quality(BaseFilter):
    """thinkmix's defaults: 1..16384 tokens (ceil(chars / 4)), 4-gram repeats <= 0.5 (>= 20
    words); its refusal check applies to `chat` rows only, and these rows are math."""

    name = "quality"

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        output = doc.text
        answer = strip_think(output) if CLOSE in output or OPEN in output else output
        if not output.strip() or not answer.strip():
            return False, "quality_empty"
        tokens = math.ceil(len(output) / 4)
        if tokens < 1:
            return False, "quality_too_short"
        if tokens > 16384:
            return False, "quality_too_long"
        words = [w.lower() for w in WORDS.findall(output)]
        grams = [tuple(words[i : i + 4]) for i in range(len(words) - 3)]
        ratio = (len(grams) - len(set(grams))) / len(grams) if grams else 0.0
        if len(words) >= 20 and ratio > 0.5:
            return False, "quality_repetitive"
        return True


def braced(text: str, start: int) -> str | None:
    depth, i = 0, start
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i]
        i += 1
    return None


def last_box(text: str) -> str | None:
    found = None
    for match in BOX.finditer(text):
        i = match.end()
        while i < len(text) and text[i] in " \t":
            i += 1
        if i < len(text) and text[i] == "{":
            content = braced(text, i)
        else:
            token = re.match(r"[^\s$]+", text[i:])
            content = token.group(0) if token else None
        if content is not None:
            found = content.strip()
    return found


class BoxedAnswer(BaseFilter):
    name = "boxed_answer"

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        on = doc.metadata.get("reasoning") == "on"
        answer = last_box(strip_think(doc.text) if on else doc.text)
        if answer is None:
            return False, "answer_missing_boxed"
        if not answer:
            return False, "answer_empty_boxed"
        doc.metadata["answer"] = answer
        return True


def count(folder: Path) -> int:
    return sum(sum(1 for _ in f.open("rb")) for f in folder.rglob("*.jsonl"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input_dir", type=Path)
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--tasks", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    out = args.output_dir

    def rejects(name: str) -> JsonlWriter:
        return JsonlWriter(str(out / "rejected" / name), compression=None)

    pipeline = [
        JsonlReader(str(args.input_dir), text_key="output", glob_pattern="*.jsonl"),
        ThinkFormat(exclusion_writer=rejects("think_format")),
        Quality(exclusion_writer=rejects("quality")),
        BoxedAnswer(exclusion_writer=rejects("boxed_answer")),
        JsonlWriter(str(out / "kept"), compression=None),
    ]
    executor = LocalPipelineExecutor(
        pipeline, tasks=args.tasks, workers=args.workers, logging_dir=str(out / "logs")
    )
    stats = executor.run()
    reasons: Counter[str] = Counter()
    for step in stats.stats:
        for key, value in step.stats.items():
            if key.startswith("dropped_"):
                reasons[key.removeprefix("dropped_")] += getattr(value, "total", value)
    print(json.dumps({"kept": count(out / "kept"), "rejected": dict(reasons)}))


if __name__ == "__main__":
    main()
