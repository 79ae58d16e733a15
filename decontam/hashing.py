"""Vectorised 64-bit hashes of tokens and token n-grams, a whole batch of rows at once.

A batch of normalised rows is one UTF-8 buffer (`decontam.normalize.normalize_batch`). A token's
hash is a polynomial hash of its bytes, `sum(c_i * P^i)` with an odd base P, salted by its
length; it is taken 8 bytes at a time from unaligned loads at the token starts, so no array per
byte is built. An n-gram's hash is the same polynomial one level up, over token hashes, from
prefix sums: `(prefix[s + n] - prefix[s]) * Q^-s` (odd numbers are invertible modulo 2^64) does
not depend on where the n-gram sits. Both pass through the splitmix64 finaliser so every bit is
mixed. Arithmetic wraps modulo 2^64 (numpy uint64), which is what the inverses rely on.

Everything is numpy: no Python loop per token or per n-gram. Memory is about 10 bytes per input
byte while a batch is hashed, so callers feed batches of a few MB (`iter_batches`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

U64 = np.uint64
_MASK = (1 << 64) - 1
_P = 0x9E3779B97F4A7C15  # odd bases; any odd constant works, these are well-mixed
_Q = 0xC2B2AE3D27D4EB4F
_Q_INV = pow(_Q, -1, 1 << 64)
_LEN_SALT = U64(0xD6E8FEB86659FD93)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser, element-wise on a uint64 array (returns a new array)."""
    with np.errstate(over="ignore"):
        x = x + U64(0x9E3779B97F4A7C15)
        shifted = x >> U64(30)  # one scratch array, the rest in place: these arrays are large
        x ^= shifted
        x *= U64(0xBF58476D1CE4E5B9)
        np.right_shift(x, U64(27), out=shifted)
        x ^= shifted
        x *= U64(0x94D049BB133111EB)
        np.right_shift(x, U64(31), out=shifted)
        x ^= shifted
        return x


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


def _window(values: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Position-free polynomial hash of values[s : s + l] for each (s, l), salted by length."""
    count = len(values)
    pw, pw_inv = _powers(_Q, count + 1), _powers(_Q_INV, count + 1)
    with np.errstate(over="ignore"):
        prefix = np.zeros(count + 1, dtype=U64)
        np.cumsum(values * pw[:count], dtype=U64, out=prefix[1:])
        raw = (prefix[starts + lengths] - prefix[starts]) * pw_inv[starts]
        return splitmix64(raw + lengths.astype(U64) * _LEN_SALT)


def token_hashes(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, offsets): uint64 hashes of the whitespace-separated tokens of every text.

    Tokens of row r are `hashes[offsets[r]:offsets[r + 1]]`. Texts must be normalised (runs of
    ASCII whitespace separate tokens).
    """
    data = (" ".join(texts) + " ").encode().translate(_WHITESPACE)
    sizes = np.fromiter((len(t.encode()) + 1 for t in texts), np.int64, len(texts))
    starts = np.zeros(len(texts) + 1, np.int64)
    np.cumsum(sizes, out=starts[1:])
    return buffer_token_hashes(data, starts)


_WHITESPACE = bytes(32 if chr(c) in " \t\n\v\f\r" else c for c in range(256))
_FIRST_BYTES = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [_MASK], dtype=U64)
_SALTS = np.arange(9, dtype=U64) * _LEN_SALT


def buffer_token_hashes(data: bytes, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, offsets) of the tokens of `data`: runs of bytes other than a space.

    Row r is `data[starts[r]:starts[r + 1]]` (rows must not share a token). The hash of a token
    is the `_window` hash of its bytes, computed without a per-byte array: the first 8 bytes of
    every token are one unaligned little-endian load, the polynomial over them one small matrix
    product, and only tokens longer than 8 bytes read more 8-byte chunks (`_long_tokens`).
    """
    size = len(data)
    buffer = np.frombuffer(data + b" " * 8, np.uint8)  # the padding keeps 8-byte loads inside
    edges = np.diff(buffer[:size] == 32, prepend=True, append=True)
    bounds = np.flatnonzero(edges)  # token starts and ends alternate: the ends are spaces
    first, lengths = bounds[0::2], bounds[1::2] - bounds[0::2]
    offsets = np.searchsorted(first, starts)
    loads = np.ndarray((size + 1,), "<u8", buffer, strides=(1,))
    with np.errstate(over="ignore"):
        head = np.minimum(lengths, 8)
        raw = _chunk_polynomials(loads[first] & _FIRST_BYTES[head])
        raw += _SALTS[head]
        long = np.flatnonzero(lengths > 8)
        if len(long):
            raw[long] += _long_tokens(loads, first[long], lengths[long])
            raw[long] += (lengths[long] - 8).astype(U64) * _LEN_SALT
    return splitmix64(raw), offsets


def _chunk_polynomials(words: np.ndarray) -> np.ndarray:
    """sum(byte_j * P^j) over the 8 little-endian bytes of each uint64."""
    lanes = words.astype("<u8", copy=False).view(np.uint8).reshape(-1, 8)
    return np.einsum("ij,j->i", lanes, _powers(_P, 8))


def _long_tokens(loads: np.ndarray, first: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The polynomial hash terms of bytes 8.. of each token (P^i weights, i from the start)."""
    chunks = (lengths - 1) // 8  # beyond the first
    owner = np.repeat(np.arange(len(first)), chunks)
    group = np.zeros(len(first), np.int64)
    np.cumsum(chunks[:-1], out=group[1:])
    step = np.arange(len(owner)) - group[owner] + 1
    at = first[owner] + 8 * step
    left = np.minimum(first[owner] + lengths[owner] - at, 8)
    with np.errstate(over="ignore"):
        words = loads[at] & _FIRST_BYTES[left]
        terms = _chunk_polynomials(words) * _powers(_P, int(8 * step.max()) + 1)[8 * step]
    return np.add.reduceat(terms, group)


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
    lengths = np.diff(offsets)
    hashes = window_hashes(tokens, n)
    keep = valid_windows(offsets, n, len(hashes))
    if informative is not None and min_informative > 0 and len(hashes):
        csum = np.concatenate(([0], np.cumsum(informative, dtype=np.int64)))
        keep &= (csum[n:] - csum[:-n]) >= min_informative
        kept = np.concatenate(([0], np.cumsum(keep, dtype=np.int64)))
        counts = np.diff(kept[np.minimum(offsets, len(hashes))])
    else:
        counts = np.maximum(lengths - n + 1, 0)
    hashes = hashes[keep]
    if short_rows:
        short = np.flatnonzero((lengths > 0) & (lengths < n))
        if len(short):
            at = np.concatenate(([0], np.cumsum(counts)))[short]
            extra = _window(tokens, offsets[short], lengths[short])
            hashes = np.insert(hashes, at, extra)
            counts[short] = 1
    out_offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(counts, out=out_offsets[1:])
    return hashes, out_offsets


def window_hashes(tokens: np.ndarray, n: int, step: int = 1) -> np.ndarray:
    """The `_window` hash of tokens[s : s + n] for s = 0, step, 2 * step, ..., rows ignored (see
    `valid_windows`)."""
    count = len(tokens) - n + 1
    if count <= 0:
        return np.zeros(0, U64)
    prefix = np.zeros(len(tokens) + 1, dtype=U64)
    with np.errstate(over="ignore"):
        np.cumsum(tokens * _powers(_Q, len(tokens)), dtype=U64, out=prefix[1:])
        raw = prefix[n : n + count : step] - prefix[:count:step]
        raw *= _powers(_Q_INV, count)[::step]
        raw += U64(n) * _LEN_SALT
    return splitmix64(raw)


def valid_windows(offsets: np.ndarray, n: int, count: int) -> np.ndarray:
    """Bool per window start s < count: do tokens s .. s + n - 1 lie in one row."""
    tails = np.minimum(np.diff(offsets), n - 1)  # a row's last n - 1 starts cross its end
    group = np.zeros(len(tails), np.int64)
    np.cumsum(tails[:-1], out=group[1:])
    bad = np.repeat(offsets[1:] - tails - group, tails) + np.arange(int(tails.sum()))
    keep = np.ones(count, dtype=np.bool_)
    keep[bad[bad < count]] = False
    return keep


def iter_batches(texts: Sequence[str], max_chars: int = 500_000) -> Iterator[tuple[int, int]]:
    """(start, stop) row ranges whose texts hold about `max_chars` characters each.

    Half a MB of text keeps a batch's per-token arrays in a core's L2 cache: MinHash signatures
    took ~30% less CPU than with 4 MB batches (benchmarks/minhash.py).
    """
    if not len(texts):
        return
    ends = np.cumsum(np.fromiter(map(len, texts), np.int64, len(texts)) + 1)
    cuts = np.searchsorted(ends, np.arange(max_chars, ends[-1], max_chars)) + 1
    bounds = [0, *np.unique(cuts[cuts < len(texts)]).tolist(), len(texts)]
    yield from zip(bounds[:-1], bounds[1:], strict=True)
