"""decontam.minhash: agreement with datasketch, perturbation recall, dedup within a blend.

Recall on all 164 HumanEval prompts (threshold 0.8, 5-word shingles): text mode catches
verbatim and reformatted copies (163 each; /61 resolves to /56 as in test_ngram), code mode
also renamed identifiers (164); neither catches a reworded docstring or a prompt embedded in
a longer answer (those are decontam.embed's and decontam.ngram's). False positives on 65
unrelated functions and paragraphs: 0.
"""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from curation.context import RunContext
from curation.record import Record
from decontam.minhash import MinHashDecontam, shingles, signatures
from tests.decontam.perturb import embed_in_answer, reformat, rename, reword


def test_jaccard_estimates_agree_with_datasketch(humaneval):
    datasketch = pytest.importorskip("datasketch")
    texts = [i.text for i in humaneval[:30]]
    texts += [reformat(t) for t in texts[:10]] + [rename(t) for t in texts[:10]]
    hashes, offsets = shingles(texts, 2, "text")
    sigs = signatures(texts, 128, 2, "text")
    sketches = []
    for r in range(len(texts)):
        m = datasketch.MinHash(num_perm=128, seed=1)
        m.update_batch([int(h).to_bytes(8, "little") for h in hashes[offsets[r] : offsets[r + 1]]])
        sketches.append(m)
    errors, exact_errors = [], []
    pairs = [(a, b) for a in range(len(texts)) for b in range(a + 1, len(texts))]
    for a, b in pairs:
        sa = set(hashes[offsets[a] : offsets[a + 1]].tolist())
        sb = set(hashes[offsets[b] : offsets[b + 1]].tolist())
        exact = len(sa & sb) / len(sa | sb)
        ours = float((sigs[a] == sigs[b]).mean())
        errors.append(abs(ours - sketches[a].jaccard(sketches[b])))
        exact_errors.append(abs(ours - exact))
    # the standard error of a 128-permutation estimate is at most 0.044
    assert np.mean(errors) < 0.03 and max(errors) < 0.2
    assert np.mean(exact_errors) < 0.03 and max(exact_errors) < 0.15


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("text", {"verbatim": 163, "reformat": 163, "rename": 4, "reword": 1, "embedded": 0}),
        ("code", {"verbatim": 164, "reformat": 88, "rename": 164, "reword": 2, "embedded": 0}),
    ],
)
def test_recall_on_perturbed_humaneval(humaneval, cache, mode, expected):
    stage = MinHashDecontam(mode=mode, cache_dir=cache)
    perturb = {
        "verbatim": lambda t: t,
        "reformat": reformat,
        "rename": rename,
        "reword": reword,
        "embedded": embed_in_answer,
    }
    got = {}
    for name, fn in perturb.items():
        matches = stage.find([fn(i.text) for i in humaneval], None)
        got[name] = sum(
            1 for m, i in zip(matches, humaneval, strict=True) if m and m.item_id == i.item_id
        )
    assert got == expected


@pytest.mark.parametrize("mode", ["text", "code"])
def test_no_false_positives(unrelated, cache, mode):
    # (with dedup, code mode rightly pairs look-alike stdlib functions such as two statistics
    # helpers differing in names only; against HumanEval nothing matches)
    stage = MinHashDecontam(mode=mode, cache_dir=cache)
    assert stage.find(unrelated, None) == [None] * len(unrelated)


def test_stage_dedups_within_the_batch(humaneval, tmp_path):
    stage = MinHashDecontam(dedup=True)
    ctx = RunContext(dataset="d", version="v", seed=0, base_dir=tmp_path)
    story = "the quick brown fox jumps over the lazy dog while the cat sleeps " * 4
    records = [
        Record(id="a", input=[{"role": "user", "content": story}]),
        Record(id="b", input=[{"role": "user", "content": story.upper() + "!"}]),
        Record(id="c", input=[{"role": "user", "content": reformat(humaneval[3].text)}]),
        Record(id="d", input=[{"role": "user", "content": "an unrelated short question"}]),
        Record(id="e", input=[]),
    ]
    result = asyncio.run(stage.process(records, ctx))
    assert [r.id for r in result.kept] == ["a", "d", "e"]
    assert [(r.id, r.reason, json.loads(r.meta["decontam.minhash"])) for r in result.rejected] == [
        (
            "b",
            "duplicate_minhash",
            {"benchmark": "blend", "item_id": "a", "score": 1.0, "shingle": 5, "mode": "text"},
        ),
        (
            "c",
            "contaminated_minhash",
            {
                "benchmark": "humaneval",
                "item_id": "HumanEval/3",
                "score": 1.0,
                "shingle": 5,
                "mode": "text",
            },
        ),
    ]


def test_parameters_are_checked():
    with pytest.raises(ValueError, match="bands"):
        MinHashDecontam(bands=5)
    with pytest.raises(ValueError, match="threshold"):
        MinHashDecontam(threshold=0.0)
