"""Format checks for the reasoning toggle: `<think>` exactly when reasoning is on.

arXiv 2505.00949 §3 (responses carry their reasoning in `<think>` tags when the system prompt says
"detailed thinking on") and §5.1 (the format reward: tags when on, none when off).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from curation.record import Record
from curation.registry import register_stage
from curation.stage import Drop, Filter
from filters.answers import THINK_CLOSE, THINK_OPEN


@register_stage("filters.think_format")
@dataclass
class ThinkFormat(Filter):
    """Keeps rows whose `output` has the think format their `reasoning` toggle asks for.

    Reads `output` and `reasoning`; writes nothing but the verdict. arXiv 2505.00949 §3, §5.1.

    - reasoning "on": one `<think>...</think>` block first (only whitespace before it), a
      non-blank body, and a non-blank answer after it;
    - reasoning "off": no `<think>` or `</think>` anywhere, and a non-blank answer.

    Reasons: `format_reasoning_unknown` (toggle neither "on" nor "off"); when off,
    `format_think_when_off` then `format_empty_answer`; when on, in this order,
    `format_missing_think` (no tags, or text before `<think>`), `format_unbalanced_think`
    (counts differ, e.g. only `</think>`), `format_multiple_think`, `format_empty_think`,
    `format_empty_answer`.

    Example: reasoning "on", output "<think>2+2=4</think>4" -> kept; output "4" ->
    Drop("format_missing_think").
    """

    requires: ClassVar[tuple[str, ...]] = ("output", "reasoning")
    provides: ClassVar[tuple[str, ...]] = ()

    def keep(self, record: Record) -> bool | Drop:
        if record.reasoning == "on":
            return self._check_on(record.output)
        if record.reasoning == "off":
            return self._check_off(record.output)
        return Drop("format_reasoning_unknown")

    @staticmethod
    def _check_off(output: str) -> bool | Drop:
        if THINK_OPEN in output or THINK_CLOSE in output:
            return Drop("format_think_when_off")
        if not output.strip():
            return Drop("format_empty_answer")
        return True

    @staticmethod
    def _check_on(output: str) -> bool | Drop:
        opens, closes = output.count(THINK_OPEN), output.count(THINK_CLOSE)
        if opens == 0 and closes == 0:
            return Drop("format_missing_think")
        if opens != closes:
            return Drop("format_unbalanced_think")
        if opens > 1:
            return Drop("format_multiple_think")
        text = output.lstrip()
        if not text.startswith(THINK_OPEN):
            # one pair, but text before `<think>`, or `</think>` before `<think>`
            return Drop(
                "format_missing_think"
                if text.find(THINK_OPEN) < text.find(THINK_CLOSE)
                else "format_unbalanced_think"
            )
        body, answer = text[len(THINK_OPEN) :].split(THINK_CLOSE, 1)
        if not body.strip():
            return Drop("format_empty_think")
        if not answer.strip():
            return Drop("format_empty_answer")
        return True
