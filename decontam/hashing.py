"""Vectorised 64-bit hashes of tokens and token n-grams, a whole batch of rows at once.

All rows are normalised (`decontam.normalize`), joined with newlines and viewed as one uint8
array. A token's hash is a polynomial hash over its bytes taken from prefix sums: with an odd
base P, `sum(c_i * P^i)` over a token, times `P^-start` (odd numbers are invertible modulo
2^64), does not depend on where the token sits. An n-gram's hash is the same trick one level up,
over token hashes. Both pass through the splitmix64 finaliser so every bit is mixed. Arithmetic
wraps modulo 2^64 (numpy uint64), which is what the inverses rely on.

Everything is numpy: no Python loop per token or per n-gram. Memory is about 40 bytes per input
byte while a batch is hashed, so callers feed batches of a few MB (`iter_batches`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

U64 = np.uint64
_MASK = (1 << 64) - 1
_P = 0x9E3779B97F4A7C15  # odd bases; any odd constant works, these are well-mixed
_Q = 0xC2B2AE3D27D4EB4F
_P_INV = pow(_P, -1, 1 << 64)
_Q_INV = pow(_Q, -1, 1 << 64)
_LEN_SALT = U64(0xD6E8FEB86659FD93)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser, element-wise on a uint64 array (returns a new array)."""
    with np.errstate(over="ignore"):
        x = x + U64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> U64(30))) * U64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> U64(27))) * U64(0x94D049BB133111EB)
        return x ^ (x >> U64(31))


_POWERS: dict[int, np.ndarray] = {}


def _powers(base: int, count: int) -> np.ndarray:
    """base^0 .. base^(count-1) modulo 2^64 (a read-only view of a cached, growing table)."""
    table = _POWERS.get(base)
    if table is None or len(table) < count:
        size = max(count, 1 << 16, 2 * len(table) if table is not None else 0)
        table = np.full(size, U64(base), dtype=U64)
        table[0] = U64(1)
        with np.errstate(over="ignore"):
            table = np.cumprod(table, dtype=U64)
        table.flags.writeable = False
        _POWERS[base] = table
    return table[:count]


def _window(values: np.ndarray, starts: np.ndarray, lengths: np.ndarray, base: int, inv: int):
    """Position-free polynomial hash of values[s : s + l] for each (s, l), salted by length."""
    count = len(values)
    pw, pw_inv = _powers(base, count + 1), _powers(inv, count + 1)
    with np.errstate(over="ignore"):
        prefix = np.zeros(count + 1, dtype=U64)
        np.cumsum(values * pw[:count], dtype=U64, out=prefix[1:])
        raw = (prefix[starts + lengths] - prefix[starts]) * pw_inv[starts]
        return splitmix64(raw + lengths.astype(U64) * _LEN_SALT)


def token_hashes(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, offsets): uint64 hashes of the whitespace-separated tokens of every text.

    Tokens of row r are `hashes[offsets[r]:offsets[r + 1]]`. Texts must be normalised (runs of
    ASCII whitespace separate tokens). Arrow splits the texts and finds the distinct tokens;
    each distinct token is hashed once and the hashes are gathered back, which is cheaper than
    hashing every byte of the batch.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    lists = pc.ascii_split_whitespace(pa.array(texts, pa.large_string()))
    row_offsets = lists.offsets.to_numpy().astype(np.int64)
    words = lists.values
    word_offsets = _offsets(words)
    # Arrow yields "" around leading/trailing whitespace and for empty texts: not tokens
    nonempty = np.diff(word_offsets) > 0
    kept = np.zeros(len(nonempty) + 1, dtype=np.int64)
    np.cumsum(nonempty, out=kept[1:])
    offsets = kept[row_offsets - row_offsets[0]]
    encoded = pc.dictionary_encode(words.filter(pa.array(nonempty)))
    vocabulary = encoded.dictionary
    vocab_offsets = _offsets(vocabulary)
    data = np.frombuffer(vocabulary.buffers()[2] or b"", dtype=np.uint8)
    starts = vocab_offsets[:-1]
    unique = _window(data.astype(U64), starts, np.diff(vocab_offsets), _P, _P_INV)
    return unique[encoded.indices.to_numpy()], offsets


def _offsets(strings) -> np.ndarray:
    """The int64 offsets of a (large) string array, relative to its data buffer."""
    width = np.int64 if strings.type == "large_string" else np.int32
    raw = np.frombuffer(strings.buffers()[1], dtype=width)
    return raw[strings.offset : strings.offset + len(strings) + 1].astype(np.int64, copy=False)


def ngram_hashes(
    tokens: np.ndarray,
    offsets: np.ndarray,
    n: int,
    short_rows: bool = False,
    informative: np.ndarray | None = None,
    min_informative: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, offsets) of the n-grams of consecutive tokens within each row.

    `short_rows`: a row with 1..n-1 tokens yields one hash of all its tokens (MinHash shingles
    want that; n-gram decontamination does not). `informative` (bool per token) with
    `min_informative` keeps only n-grams with at least that many informative tokens.
    """
    rows = len(offsets) - 1
    lengths = np.diff(offsets)
    row_of = np.repeat(np.arange(rows), lengths)
    total = len(tokens)
    starts = np.arange(max(0, total - n + 1))
    keep = row_of[starts] == row_of[starts + n - 1] if len(starts) else starts.astype(bool)
    if informative is not None and min_informative > 0 and len(starts):
        csum = np.concatenate(([0], np.cumsum(informative, dtype=np.int64)))
        keep &= (csum[starts + n] - csum[starts]) >= min_informative
    starts = starts[keep]
    widths = np.full(len(starts), n, dtype=np.int64)
    if short_rows:
        short = np.flatnonzero((lengths > 0) & (lengths < n))
        starts = np.concatenate((starts, offsets[short]))
        widths = np.concatenate((widths, lengths[short]))
        order = np.argsort(starts, kind="stable")
        starts, widths = starts[order], widths[order]
    hashes = _window(tokens, starts, widths, _Q, _Q_INV) if len(starts) else np.zeros(0, U64)
    counts = np.bincount(row_of[starts], minlength=rows) if len(starts) else np.zeros(rows, int)
    out_offsets = np.zeros(rows + 1, dtype=np.int64)
    np.cumsum(counts, out=out_offsets[1:])
    return hashes, out_offsets


def iter_batches(texts: Sequence[str], max_chars: int = 4_000_000) -> Iterator[tuple[int, int]]:
    """(start, stop) row ranges whose texts hold about `max_chars` characters each."""
    start, size = 0, 0
    for i, text in enumerate(texts):
        size += len(text) + 1
        if size >= max_chars:
            yield start, i + 1
            start, size = i + 1, 0
    if start < len(texts):
        yield start, len(texts)
