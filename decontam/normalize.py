"""Text normalisation shared by every decontamination method (DESIGN §7).

Two modes, both ending in one string of space-separated tokens, so n-gram, MinHash and
embedding checks see the same text:

- `text`: Unicode NFKC, lower case, punctuation -> space, whitespace collapsed. A reformatted
  item (line breaks, indentation, quote style, Markdown fences) normalises to the same words.
- `code`: NFKC, then identifiers, numbers and single punctuation marks become tokens; every
  name the text itself binds (functions, classes, parameters, assignment, loop, `as` and lambda
  targets), wherever it appears, docstrings included, becomes the placeholder `PLACEHOLDER`, so
  renaming a function or its arguments does not change the token stream. Other words stay:
  replacing every identifier made unrelated code look alike (a third of standard-library
  functions matched HumanEval at n=13 in tests/decontam).

Example:
    >>> normalize("def Add(a, b):\\n    return a+b", "text")
    'def add a b return a b'
    >>> normalize("def add(x, y): return x+y", "code")
    'def \\x01 ( \\x01 , \\x01 ) : return \\x01 + \\x01'
    >>> normalize("def f(n):\\n    'Sum of 1..n.'\\n    return sum(range(n + 1))", "code")
    "def \\x01 ( \\x01 ) : ' Sum of 1 . . \\x01 . ' return sum ( range ( \\x01 + 1 ) )"
"""

from __future__ import annotations

import builtins
import keyword
import re
import unicodedata
from collections.abc import Sequence
from typing import Literal

import numpy as np

Mode = Literal["text", "code"]
MODES: tuple[str, ...] = ("text", "code")

PLACEHOLDER = "\x01"  # what every user identifier becomes in `code` mode

_PUNCT = re.compile(r"[^\w\s]+|_+", re.UNICODE)
_CODE_TOKEN = re.compile(r"[^\W\d]\w*|\d+(?:\.\d+)?|[^\w\s]", re.UNICODE)
_KEEP = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | frozenset(dir(builtins))
_KEEP |= frozenset({"self", "cls"})
_DEF = re.compile(r"\b(?:def|class)\s+([^\W\d]\w*)(?:\s*\(([^)]*)\))?")
_BOUND = re.compile(
    r"\b(?:for|as|lambda|global|nonlocal)\s+([^\W\d]\w*(?:\s*,\s*[^\W\d]\w*)*)"
    r"|^\s*([^\W\d]\w*(?:\s*,\s*[^\W\d]\w*)*)\s*(?:[-+*/%&|^]|//|\*\*)?=(?!=)",
    re.M,
)
_NAME = re.compile(r"[^\W\d]\w*")


# ASCII fast path of `_PUNCT`: every ASCII character that is neither alphanumeric nor whitespace
_ASCII_PUNCT = str.maketrans(
    {c: " " for c in map(chr, range(128)) if not c.isalnum() and not c.isspace()}
)
# ...and whitespace too: what hashing callers use, who split on runs of spaces themselves
_ASCII_SEPARATORS = str.maketrans({c: " " for c in map(chr, range(128)) if not c.isalnum()})
# `text` mode of ASCII as one table over UTF-8 bytes, so a whole batch is done by one
# bytes.translate: lower case, every other non-alphanumeric -> space. Bytes >= 0x80 only occur in
# rows `normalize` already did, whose ASCII is lower-case alphanumerics and spaces: unchanged.
_TEXT_BYTES = bytes(ord(c.lower()) if c.isalnum() else 32 for c in map(chr, range(128)))
_TEXT_BYTES += bytes(range(128, 256))


def normalize(text: str, mode: Mode = "text", collapse: bool = True) -> str:
    """`text` as space-separated tokens in the given mode (see the module docstring).

    `collapse=False` may leave runs of spaces (and leading or trailing ones) between the same
    tokens, which saves a split and a join for callers that tokenise on whitespace runs.
    """
    if not text.isascii():  # NFKC leaves ASCII unchanged; skipping it is most of the speed
        text = unicodedata.normalize("NFKC", text)
    if mode == "text":
        text = text.lower()
        if text.isascii():
            if not collapse:
                return text.translate(_ASCII_SEPARATORS)
            return " ".join(text.translate(_ASCII_PUNCT).split())
        return " ".join(_PUNCT.sub(" ", text).split())
    if mode == "code":
        bound = bound_names(text)
        return " ".join(PLACEHOLDER if tok in bound else tok for tok in _CODE_TOKEN.findall(text))
    raise ValueError(f"unknown normalisation mode {mode!r}; expected one of {', '.join(MODES)}")


def normalize_batch(texts: Sequence[str], mode: Mode = "text") -> tuple[bytes, np.ndarray]:
    """The texts normalised in `mode` as one UTF-8 buffer, and where each text starts in it.

    Text r is `data[starts[r] : starts[r + 1] - 1]`, followed by a space; its tokens, split on
    runs of spaces, are those of `normalize(texts[r], mode)`. In `text` mode ASCII texts skip the
    per-text call: one `bytes.translate` over the buffer does their lower case and punctuation.
    """
    check_mode(mode, "normalize_batch")
    if mode == "text":
        parts = [t if t.isascii() else normalize(t, mode, collapse=False) for t in texts]
    else:
        parts = [normalize(t, mode) for t in texts]
    joined = " ".join(parts) + " "
    data = joined.encode()
    if len(data) == len(joined):  # all ASCII: characters are bytes
        sizes = np.fromiter(map(len, parts), np.int64, len(parts))
    else:
        sizes = np.fromiter((len(p.encode()) for p in parts), np.int64, len(parts))
    starts = np.zeros(len(parts) + 1, np.int64)
    np.cumsum(sizes + 1, out=starts[1:])
    return (data.translate(_TEXT_BYTES) if mode == "text" else data), starts


def bound_names(code: str) -> set[str]:
    """Names a piece of Python binds: def/class names, parameters and assignment targets."""
    names: set[str] = set()
    for name, params in _DEF.findall(code):
        names.add(name)
        for param in params.split(","):
            found = _NAME.search(param.split(":")[0].split("=")[0])
            if found:
                names.add(found.group())
    for group in _BOUND.findall(code):
        for part in group:
            names.update(_NAME.findall(part))
    return names - _KEEP


def check_mode(mode: str, owner: str) -> None:
    if mode not in MODES:
        raise ValueError(f"{owner}: mode must be one of {', '.join(MODES)}, got {mode!r}")
