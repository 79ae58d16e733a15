"""The stage bases: GroupFilter groups and files verdicts, LLMStage asks once per batch and files
each answer's row (failed, rejected with the raw text, or kept with its columns)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from typing import ClassVar

from curation.generation import GenerationResponse
from curation.record import Record
from curation.stage import Drop, GroupFilter, LLMStage
from tests.generators.test_its import scripted_ctx


def row(rid: str, problem: str | None, output: str = "", **scores: float) -> Record:
    meta = {"problem_id": problem} if problem else {}
    return Record(id=rid, input=[{"role": "user", "content": rid}], output=output, meta=meta,
                  scores=dict(scores))  # fmt: skip


@dataclass
class Longest(GroupFilter):
    """Keeps the longest output of each group; rows without output join no group."""

    stage_type: ClassVar[str] = "test.longest"

    def keep(self, record: Record) -> bool | Drop:
        return bool(record.output) or Drop("longest_empty", score=-1.0)

    def arrange(self, rows: list[Record]) -> list[Record]:
        return sorted(rows, key=lambda r: -len(r.output))

    def judge_group(self, rows, ctx):
        return [True] + [Drop("longest_not_longest")] * (len(rows) - 1)


def test_group_filter_groups_in_first_appearance_order_and_files_verdicts(tmp_path):
    rows = [row("a1", "a", "x"), row("b1", "b", "yyy"), row("e", "a", ""), row("a2", "a", "xx"),
            row("solo", None, "z", **{"test.longest": 0.0})]  # fmt: skip
    result = asyncio.run(Longest().process(rows, scripted_ctx(tmp_path)))
    assert [r.id for r in result.kept] == ["a2", "b1", "solo"]
    assert [(r.id, r.reason) for r in result.rejected] == [
        ("e", "longest_empty"),  # dropped before grouping, ahead of the groups' drops
        ("a1", "longest_not_longest"),
    ]
    assert {r.id: r.scores["test.longest"] for r in rows} == {
        "a1": 0.0, "b1": 1.0, "e": -1.0, "a2": 1.0, "solo": 1.0,  # a group's verdict overwrites
    }  # fmt: skip
    assert all(r.stage == "test.longest" for r in result.rejected)
    assert Longest.scope == "group" and Longest.kind == "filter"


@dataclass
class Merge(GroupFilter):
    """Keeps one new row per group in the first row's place; leaves scores alone."""

    stage_type: ClassVar[str] = "test.merge"
    scored: ClassVar[bool] = False

    def judge_group(self, rows, ctx):
        merged = replace(rows[0], id=f"{ctx.dataset}:{rows[0].meta['problem_id']}",
                         output="+".join(r.output for r in rows))  # fmt: skip
        return [merged] + [Drop("merge_merged")] * (len(rows) - 1)


def test_a_group_verdict_can_be_a_new_row(tmp_path):
    rows = [row("a1", "a", "x"), row("a2", "a", "y")]
    result = asyncio.run(Merge().process(rows, scripted_ctx(tmp_path)))
    ((merged,), (dropped,)) = result.kept, result.rejected
    assert (merged.id, merged.output, merged.scores) == ("t:a", "x+y", {})
    assert rows[0].id == "a1" and dropped is rows[1] and dropped.scores == {}


@dataclass
class Shout(LLMStage):
    """Two shouted versions of every row that has output."""

    stage_type: ClassVar[str] = "test.shout"
    teacher: str = "writer"
    samples: int = 2
    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int = 16

    def format_input(self, record):
        return [{"role": "user", "content": record.output}] if record.output else None

    def kept_inputs(self, records):
        return list(records)

    def new_row(self, ctx, record, k, generator, response):
        return replace(
            record, id=f"{record.id}-{k}", output="", meta={"finish": response.finish_reason}
        )

    def parse_output(self, text, row, response):
        return (
            {"output": text.upper(), "meta.k": row.id[-1]} if text.strip() else Drop("shout_empty")
        )


def test_llm_stage_asks_once_and_files_every_answer(tmp_path):
    def script(request):
        if request.messages[0][1] == "boom":
            return GenerationResponse("", "error", error="HTTP 500")
        return "" if request.sample_index else f"hey {request.messages[0][1]}"

    ctx = scripted_ctx(tmp_path, writer=script)
    rows = [row("a", None, "you"), row("b", None, ""), row("c", None, "boom")]
    result = asyncio.run(Shout().process(rows, ctx))
    assert result.kept[:3] == rows  # kept_inputs first, then the kept answers
    assert [(r.id, r.output, r.meta) for r in result.kept[3:]] == [
        ("a-0", "HEY YOU", {"finish": "stop", "k": "0"})
    ]
    (empty,) = result.rejected
    assert (empty.id, empty.reason, empty.output, empty.generator) == (
        "a-1", "shout_empty", "", "writer-model",  # the raw text and who wrote it stay
    )  # fmt: skip
    assert [(r.id, r.reason) for r in result.failed] == [
        ("c-0", "request_failed: HTTP 500"),
        ("c-1", "request_failed: HTTP 500"),
    ]
    seen = ctx.teacher("writer").backend.seen
    assert [(r.messages[0][1], r.sample_index, r.seed) for r in seen] == [
        ("you", 0, 0), ("you", 1, 0), ("boom", 0, 0), ("boom", 1, 0),  # b has no output: no request
    ]  # fmt: skip
    assert seen[0].sampling.as_dict() == {"temperature": 0.7, "top_p": 1.0, "max_tokens": 16}
