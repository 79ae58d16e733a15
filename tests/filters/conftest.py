"""Shared parts of the filter tests: a scripted teacher backend and a run context around it.

`ScriptedBackend` is a fake of the `Backend` interface (not of our internals): it answers each
request with a plain function of the request, so tests know the exact reply a stage gets. It is
registered as the backend `scripted-judge`, so recipes in end-to-end tests can name it too:
`{backend: scripted-judge, model: judge}` picks `SCRIPTS["judge"]`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from curation.cache import RequestCache
from curation.context import CachedTeacher, RunContext
from curation.generation import GenerationRequest, GenerationResponse
from curation.registry import register_backend
from filters.judge import parse_verdict

Script = Callable[[GenerationRequest], str]

# Pairs the scripted judge calls equivalent although they are spelled differently.
EQUIVALENT = {("one half", "0.5"), ("twelve", "12"), ("0.5", "1/2")}
_FIELD = re.compile(r"^(Predicted|Expected) answer: (.*)$", re.MULTILINE)


def judge_script(request: GenerationRequest) -> str:
    """A judge: the task's predicted/expected answers (the last pair in the prompt) decide."""
    prompt = request.messages[-1][1]
    fields = dict(_FIELD.findall(prompt.rsplit("YOUR TASK", 1)[-1]))
    predicted, expected = fields["Predicted"].strip(), fields["Expected"].strip()
    if predicted == "GIBBERISH":
        return "Let me think about the weather instead."
    same = predicted == expected or (predicted, expected) in EQUIVALENT
    return f"Reasoning: compared {predicted} with {expected}.\n\nJudgement: **{'Yes' if same else 'No'}**"


def solver_script(request: GenerationRequest) -> str:
    """A math solver that is right on sample 0 and 1 only: a pass rate of 2/k on every prompt.

    It reads the tinyworld word problems ("gives away 214" and "lost 420" subtract, else add).
    """
    prompt = request.messages[-1][1]
    a, b = (int(x) for x in re.findall(r"\d+", prompt)[:2])
    right = a - b if "gives away" in prompt or " lost " in prompt else a + b
    answer = right if request.sample_index < 2 else right + 1
    return f"<think>\n{a} and {b}\n</think>\n\nThe answer is \\boxed{{{answer}}}."


SCRIPTS: dict[str, Script] = {"judge": judge_script, "solver": solver_script}


@register_backend("scripted-judge")
class ScriptedBackend:
    """Answers with `SCRIPTS[model]` (or `script`); a reply starting "ERROR" becomes a failure."""

    name = "scripted-judge"

    def __init__(self, model: str = "judge", script: Script | None = None, **_: object):
        self.model = model
        self.script = script or SCRIPTS[model]
        self.calls: list[GenerationRequest] = []

    async def generate(self, requests: list[GenerationRequest]) -> list[GenerationResponse]:
        self.calls.extend(requests)
        out = []
        for request in requests:
            text = self.script(request)
            if text.startswith("ERROR"):
                out.append(GenerationResponse("", "error", error=text))
            else:
                out.append(GenerationResponse(text, "stop", 10, len(text)))
        return out

    def close(self) -> None:
        pass


def make_context(tmp_path: Path, seed: int = 0, **backends: object) -> RunContext:
    """A run context whose teachers (name=backend) sit behind a request cache in `tmp_path`."""
    cache = RequestCache(tmp_path / "requests.sqlite")
    ctx = RunContext(dataset="test", version="v", seed=seed, base_dir=tmp_path)
    for name, backend in backends.items():
        ctx.teachers[name] = CachedTeacher(name, backend, cache)
    return ctx


@pytest.fixture
def scripted_judge() -> ScriptedBackend:
    return ScriptedBackend("judge")


__all__ = ["SCRIPTS", "ScriptedBackend", "make_context", "parse_verdict"]
