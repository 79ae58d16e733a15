"""decontam.embed: verdict parsing (fast) and retrieval + judge with a fake judge backend (slow:
loads MiniLM, ~10 s). The fake judge is a Backend like any other; it says YES when the item's
docstring examples appear in the sample, which is enough to test retrieval, prompts, parsing
and the request cache. Recall on reworded HumanEval docstrings (first 40 items): all 40 have the
true item in the top 3 (MiniLM) and are dropped; unrelated code and prose: none dropped.
"""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from curation.cache import RequestCache
from curation.context import CachedTeacher, RunContext
from curation.generation import GenerationResponse
from curation.record import Record
from decontam.embed import EmbedJudgeDecontam, parse_verdict
from tests.decontam.perturb import reword


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("Verdict: YES", True),
        ("verdict: no", False),
        ("**Verdict:** Yes.", True),
        ("Yes", True),
        ("No, these are different problems.", False),
        ("<think>yes or no? the item asks...</think>Verdict: NO", False),
        ("Rephrased: true", True),
        ("I cannot tell.", None),
        ("yes and no", None),
        ("Verdict: YES. (earlier I thought no)", True),
    ],
)
def test_parse_verdict(text, verdict):
    assert parse_verdict(text) is verdict


class FakeJudge:
    """Answers YES when the item's first full `def` line appears in the sample."""

    name, model = "fake", "judge"

    def __init__(self):
        self.calls = 0

    async def generate(self, requests):
        out = []
        for request in requests:
            self.calls += 1
            prompt = request.messages[-1][1]
            item, sample = prompt.split("BENCHMARK ITEM:")[1].split("TRAINING SAMPLE:")
            sig = re.search(r"def \w+\(.*", item)
            yes = sig is not None and sig.group() in sample
            out.append(GenerationResponse(text="Verdict: YES" if yes else "Verdict: NO"))
        return out

    def close(self):
        pass


@pytest.mark.slow
def test_embed_judge_catches_reworded_items(humaneval, unrelated, tmp_path):
    judge = FakeJudge()
    cache = RequestCache(tmp_path / "requests.sqlite")
    ctx = RunContext(dataset="d", version="v", seed=0, base_dir=tmp_path)
    ctx.teachers["judge"] = CachedTeacher("judge", judge, cache)
    stage = EmbedJudgeDecontam(benchmarks=["humaneval"], judge="judge", top_k=3)

    def rows():
        texts = [reword(i.text) for i in humaneval[:40]] + unrelated
        return [
            Record(id=str(k), input=[{"role": "user", "content": t}]) for k, t in enumerate(texts)
        ]

    result = asyncio.run(stage.process(rows(), ctx))
    assert sorted(int(r.id) for r in result.rejected) == list(range(40))
    for r in result.rejected:
        match = json.loads(r.meta["decontam.embed"])
        assert match["item_id"] == f"HumanEval/{r.id}" and match["verdict"] == "Verdict: YES"
        assert r.reason == "contaminated_embed" and r.scores["decontam.embed"] == match["score"]
    calls = judge.calls
    again = asyncio.run(stage.process(rows(), ctx))  # every verdict now comes from the cache
    assert judge.calls == calls and len(again.rejected) == 40
    assert ctx.teachers["judge"].usage.cached_requests == calls
    cache.close()
