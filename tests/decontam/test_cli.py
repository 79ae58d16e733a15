"""`thinkmix decontam` (decontam_app): bench list/show, run on a file, run on a store version."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from curation.record import Record
from curation.store import Store
from decontam.cli import decontam_app
from tests.decontam.perturb import embed_in_answer, reformat


def invoke(*args):
    result = CliRunner().invoke(decontam_app, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def test_bench_list_and_show():
    code, out = invoke("bench", "list")
    assert code == 0 and "humaneval\t" in out and "math500\t" in out
    code, out = invoke("bench", "show", "humaneval", "--limit", "1")
    assert code == 0 and out.startswith("humaneval: 164 items")
    assert json.loads(out.splitlines()[1])["item_id"] == "HumanEval/0"
    code, out = invoke("bench", "show", "nope")
    assert code == 1


def test_run_on_a_file_writes_an_exact_report(humaneval, tmp_path):
    rows = [
        {"text": "What is the capital of France? Paris, of course."},
        {"id": "r1", "text": embed_in_answer(humaneval[2].text)},
        {"text": reformat(humaneval[12].text)},
    ]
    src = tmp_path / "rows.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = tmp_path / "report.jsonl"
    code, out = invoke(
        "run", src, "--bench", "humaneval", "--method", "ngram,minhash",
        "--report", report, "--cache-dir", tmp_path / "cache",
    )  # fmt: skip
    assert code == 0, out
    assert out.strip() == "3 rows, 2 flagged (3 matches)"
    lines = [json.loads(x) for x in report.read_text().splitlines()]
    assert lines == [
        {"row": 1, "id": "r1", "method": "ngram", "reason": "contaminated_ngram",
         "benchmark": "humaneval", "item_id": "HumanEval/2", "score": 1.0, "count": 35,
         "n": 13, "mode": "text"},
        {"row": 2, "id": "2", "method": "minhash", "reason": "contaminated_minhash",
         "benchmark": "humaneval", "item_id": "HumanEval/12", "score": 1.0, "shingle": 5,
         "mode": "text"},
        {"row": 2, "id": "2", "method": "ngram", "reason": "contaminated_ngram",
         "benchmark": "humaneval", "item_id": "HumanEval/12", "score": 1.0, "count": 42,
         "n": 13, "mode": "text"},
    ]  # fmt: skip


def test_run_errors_name_the_fix(tmp_path):
    src = tmp_path / "rows.jsonl"
    src.write_text(json.dumps({"prompt": "x"}) + "\n")
    code, out = invoke("run", src, "--cache-dir", tmp_path / "c")
    assert code == 1
    code, out = invoke("run", src, "--field", "prompt", "--bench", "m=missing.jsonl")
    assert code == 1


def test_run_on_a_store_version_moves_rows_to_rejected(humaneval, tmp_path):
    store = Store(tmp_path / "store")
    rows = [
        Record(id="clean", input=[{"role": "user", "content": "Add 2 and 3."}], output="5"),
        Record(id="leak", input=[{"role": "user", "content": humaneval[0].text}], output="..."),
    ]
    staging = store.staging("code", "v1")
    files = [staging.write_shard(s, 0, rows if s == "train" else []) for s in ("train", "rejected", "failed")]  # fmt: skip
    staging.mark_done(0, files)
    staging.commit({})
    code, out = invoke("run", "code/v1", "--store", store.root, "--cache-dir", tmp_path / "c")
    assert code == 0, out
    assert out.strip().splitlines()[-1] == "code/v1-decontam"
    assert [r.id for r in store.read_records("code/v1-decontam", "train")] == ["clean"]
    [leak] = store.read_records("code/v1-decontam", "rejected")
    assert (leak.id, leak.reason) == ("leak", "contaminated_ngram")
    assert json.loads(leak.meta["decontam.ngram"])["item_id"] == "HumanEval/0"
    assert store.manifest("code/v1-decontam")["parent"] == "code/v1"
