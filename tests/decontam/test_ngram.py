"""decontam.ngram on HumanEval: which perturbations each mode catches, no false positives.

Recall on all 164 HumanEval prompts (n=13):
  text mode: verbatim 163, reformatted 163, embedded in an answer 163 (HumanEval/61 is
  attributed to /56, equal once punctuation goes), renamed identifiers 124, reworded docstring 50;
  code mode: verbatim, reformatted, renamed, embedded 164 each; reworded docstring 67 (those
  whose doctest examples survive; the rest is decontam.embed's job).
False positives on 65 standard-library functions and prose paragraphs: 0 in both modes.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

from curation.context import RunContext
from curation.record import Record
from curation.registry import stage_class
from decontam.bench import BenchItem
from decontam.hashing import ngram_hashes, token_hashes
from decontam.ngram import NgramDecontam, NgramIndex, RowHits
from decontam.normalize import normalize
from tests.decontam.perturb import embed_in_answer, reformat, rename, reword

PERTURB = {
    "verbatim": lambda t: t,
    "reformat": reformat,
    "rename": rename,
    "reword": reword,
    "embedded": embed_in_answer,
}


def recall(stage, items, perturb) -> int:
    matches = stage.find([perturb(i.text) for i in items], None)
    return sum(1 for m, i in zip(matches, items, strict=True) if m and m.item_id == i.item_id)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("text", {"verbatim": 163, "reformat": 163, "embedded": 163, "rename": 124, "reword": 50}),
        ("code", {"verbatim": 164, "reformat": 164, "embedded": 164, "rename": 164, "reword": 67}),
    ],
)
def test_recall_on_perturbed_humaneval(humaneval, cache, mode, expected):
    stage = NgramDecontam(n=13, mode=mode, cache_dir=cache)
    got = {name: recall(stage, humaneval, fn) for name, fn in PERTURB.items()}
    assert got == expected


@pytest.mark.parametrize("mode", ["text", "code", "both"])
def test_no_false_positives(unrelated, cache, mode):
    assert len(unrelated) >= 60
    stage = NgramDecontam(n=13, mode=mode, cache_dir=cache)
    assert stage.find(unrelated, None) == [None] * len(unrelated)


def test_items_equal_up_to_punctuation_resolve_to_the_first(humaneval, cache):
    """HumanEval/56 and /61 differ only in the bracket characters ("<>" vs "()"), which text
    mode removes; the row is still flagged, attributed to the first of the tied items."""
    stage = NgramDecontam(n=13, cache_dir=cache)
    matches = stage.find([i.text for i in humaneval], None)
    wrong = [(i.item_id, m and m.item_id) for m, i in zip(matches, humaneval, strict=True)]
    assert [w for w in wrong if w[0] != w[1]] == [("HumanEval/61", "HumanEval/56")]
    assert (
        NgramDecontam(n=13, mode="code", cache_dir=cache)
        .find([humaneval[61].text], None)[0]
        .item_id
        == "HumanEval/61"
    )


def test_hashes_match_a_set_of_tuples(humaneval):
    """The vectorised hashes find exactly the n-grams a plain Python set of tuples finds."""
    texts = [normalize(i.text) for i in humaneval[:40]]
    index_texts, rows = texts[:20], texts[10:40]
    grams = {tuple(t.split()[j : j + 8]) for t in index_texts for j in range(len(t.split()) - 7)}
    expected = [
        sum(tuple(t.split()[j : j + 8]) in grams for j in range(len(t.split()) - 7)) for t in rows
    ]
    ih, io = ngram_hashes(*token_hashes(index_texts), 8)
    rh, ro = ngram_hashes(*token_hashes(rows), 8)
    hit = np.isin(rh, ih)
    got = [int(hit[ro[r] : ro[r + 1]].sum()) for r in range(len(rows))]
    assert got == expected


def test_probe_skips_only_rows_a_full_scan_finds_nothing_in():
    """The text-mode probe (every step-th shorter window) gives the counts of a full scan."""
    rng = np.random.default_rng(0)
    vocab = [f"w{i}" for i in range(200)]
    items = [BenchItem("b", str(i), " ".join(rng.choice(vocab, 60))) for i in range(20)]
    rows = []
    for r in range(400):
        words = list(rng.choice(vocab, rng.integers(0, 40)))
        quote = items[r % 20].text.split()
        at, size = rng.integers(0, 40), rng.integers(5, 21)
        words[len(words) // 2 : len(words) // 2] = quote[at : at + size] if r % 3 else []
        rows.append(("Intro. " if r % 2 else "") + " ".join(words))
    for n in (8, 13):
        index = NgramIndex.build(items, n)
        full = NgramIndex(index.hashes, index.items, index.item_counts, n)
        assert index.probe is not None and full.probe is None
        probed, scanned = index.scan(rows), full.scan(rows)
        for field in RowHits.__annotations__:
            assert getattr(probed, field).tolist() == getattr(scanned, field).tolist(), field
        assert 0 < (probed.matched > 0).sum() < len(rows)


def test_uncollapsed_text_hashes_like_the_normal_form():
    """`collapse=False` keeps runs of spaces, yet gives the tokens and hashes of the normal form."""
    texts = [
        "  Leading, trailing\tand\n\ninner   runs!  ",
        "",
        "   ",
        "snake_case x\x1cy \x01 (a+b)",
        "Déjà vu: NFKC ﬁ ligature",
        "one",
    ]
    hashes, offsets = token_hashes([normalize(t) for t in texts])
    fast, fast_offsets = token_hashes([normalize(t, collapse=False) for t in texts])
    assert offsets.tolist() == fast_offsets.tolist() == [0, 5, 5, 5, 11, 16, 17]
    assert hashes.tolist() == fast.tolist()
    assert token_hashes(["a b", "b a"])[0].tolist()[:2] == token_hashes(["b a"])[0].tolist()[::-1]


def test_stage_process_records_and_cache(humaneval, tmp_path):
    stage = stage_class("decontam.ngram")(benchmarks=["humaneval"], n=13)
    assert isinstance(stage, NgramDecontam)
    ctx = RunContext(dataset="d", version="v", seed=0, base_dir=tmp_path)
    item = humaneval[7]
    records = [
        Record(id="a", input=[{"role": "user", "content": "Solve:\n" + item.text}], output="ok"),
        Record(id="b", input=[{"role": "user", "content": "What is 2 + 2?"}], output="4"),
    ]
    result = asyncio.run(stage.process(records, ctx))
    assert [r.id for r in result.kept] == ["b"]
    [bad] = result.rejected
    assert (bad.stage, bad.reason) == ("decontam.ngram", "contaminated_ngram")
    assert json.loads(bad.meta["decontam.ngram"]) == {
        "benchmark": "humaneval",
        "item_id": "HumanEval/7",
        "score": 1.0,
        "count": 31,
        "n": 13,
        "mode": "text",
    }
    assert bad.scores["decontam.ngram"] == 1.0 and result.kept[0].scores["decontam.ngram"] == 0.0
    assert len(list(Path(tmp_path, ".thinkmix-cache", "decontam").glob("ngram-*.npz"))) == 1


def test_parameters_are_checked():
    with pytest.raises(ValueError, match="mode"):
        NgramDecontam(mode="words")
    with pytest.raises(ValueError, match="n must be"):
        NgramDecontam(n=0)
    with pytest.raises(ValueError, match="fields"):
        NgramDecontam(fields=["prompt"])
