"""IFEval-style verifiable constraints as plain functions, with a parser and an English wording.

Each constraint kind is a `Verifier`: `check(text, **params) -> bool` on the answer text, the
`params` it takes (their types checked by `Verifier.parse`), and `describe(**params)`, the
sentence a prompt states it with ("Answer with at most 5 words."). `VERIFIERS` maps kind ->
Verifier. The kinds follow the IFEval instruction families (arXiv 2311.07911, Table 1) that need
no language detector:

| kind | params | passes when the answer ... |
|---|---|---|
| `word_count` | relation, n | has `relation` n words |
| `sentence_count` | relation, n | has `relation` n sentences (ended by . ! ? or the end) |
| `paragraph_count` | relation, n | has `relation` n paragraphs (split by blank lines or `***`) |
| `include_keywords` | keywords | contains every keyword (case-insensitive, whole words) |
| `forbidden_words` | words | contains none of the words |
| `keyword_frequency` | keyword, relation, n | contains the keyword `relation` n times |
| `letter_frequency` | letter, relation, n | contains the letter `relation` n times (any case) |
| `uppercase` | - | has letters and no lowercase letter |
| `lowercase` | - | has letters and no uppercase letter |
| `capital_word_frequency` | relation, n | has `relation` n ALL-CAPS words |
| `json_format` | - | parses as JSON (a ```json fence around it is allowed) |
| `bullet_list` | n, relation="exactly" | has `relation` n markdown bullets (`* ` or `- ` lines) |
| `starts_with` | phrase | starts with the phrase (case-insensitive) |
| `ends_with` | phrase | ends with the phrase (case-insensitive) |
| `section_count` | n, relation="at least", splitter="Section" | has lines `Section 1`, ... |
| `no_commas` | - | has no comma |
| `quotation` | - | is wrapped in double quotes |
| `title` | - | has a title in double angle brackets, `<<like this>>` |
| `placeholders` | n, relation="at least" | has square-bracket placeholders like `[address]` |
| `highlighted_sections` | n, relation="at least" | has markdown highlights like `*this*` |
| `postscript` | marker="P.S." | has a line starting with the marker |

`relation` is one of "at least", "at most", "exactly", "less than", "more than"; counts are
non-negative ints. A field whose value is None counts as absent (Arrow fills fields missing
from some rows of a struct column with null).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

RELATIONS: dict[str, Callable[[int, int], bool]] = {
    "at least": lambda got, n: got >= n,
    "at most": lambda got, n: got <= n,
    "exactly": lambda got, n: got == n,
    "less than": lambda got, n: got < n,
    "more than": lambda got, n: got > n,
}
_REQUIRED = object()  # a Param default meaning "the constraint must give this field"
_WORD = re.compile(r"\w+(?:['’-]\w+)*")
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n|^\s*\*\*\*\s*$", re.MULTILINE)
_BULLET = re.compile(r"^\s*[*-]\s+\S", re.MULTILINE)
_FENCE = re.compile(r"^```(?:json)?\s*\n?(.*?)\n?```$", re.DOTALL | re.IGNORECASE)


def _count_matches(pattern: str, text: str) -> int:
    return len(re.findall(pattern, text, re.IGNORECASE))


def _phrase(text: str) -> str:
    # Whole words / phrases: no word character may touch either end ("cat" is not in "cats").
    return rf"(?<!\w){re.escape(text)}(?!\w)"


def _compare(got: int, relation: str, n: int) -> bool:
    return RELATIONS[relation](got, n)


def word_count(text: str, relation: str, n: int) -> bool:
    return _compare(len(_WORD.findall(text)), relation, n)


def sentence_count(text: str, relation: str, n: int) -> bool:
    parts = [p for p in _SENTENCE_END.split(text) if _WORD.search(p)]
    return _compare(len(parts), relation, n)


def paragraph_count(text: str, relation: str, n: int) -> bool:
    parts = [p for p in _PARAGRAPH_BREAK.split(text.strip()) if p.strip()]
    return _compare(len(parts), relation, n)


def include_keywords(text: str, keywords: list[str]) -> bool:
    return all(re.search(_phrase(k), text, re.IGNORECASE) for k in keywords)


def forbidden_words(text: str, words: list[str]) -> bool:
    return not any(re.search(_phrase(w), text, re.IGNORECASE) for w in words)


def keyword_frequency(text: str, keyword: str, relation: str, n: int) -> bool:
    return _compare(_count_matches(_phrase(keyword), text), relation, n)


def letter_frequency(text: str, letter: str, relation: str, n: int) -> bool:
    return _compare(text.lower().count(letter.lower()), relation, n)


def uppercase(text: str) -> bool:
    return any(c.isalpha() for c in text) and text == text.upper()


def lowercase(text: str) -> bool:
    return any(c.isalpha() for c in text) and text == text.lower()


def capital_word_frequency(text: str, relation: str, n: int) -> bool:
    caps = [w for w in _WORD.findall(text) if w.isupper()]
    return _compare(len(caps), relation, n)


def json_format(text: str) -> bool:
    body = text.strip()
    fenced = _FENCE.match(body)
    try:
        json.loads(fenced.group(1) if fenced else body)
    except json.JSONDecodeError:
        return False
    return True


def bullet_list(text: str, n: int, relation: str = "exactly") -> bool:
    return _compare(len(_BULLET.findall(text)), relation, n)


def starts_with(text: str, phrase: str) -> bool:
    return text.strip().lower().startswith(phrase.strip().lower())


def ends_with(text: str, phrase: str) -> bool:
    return text.strip().lower().endswith(phrase.strip().lower())


def section_count(text: str, n: int, relation: str = "at least", splitter: str = "Section") -> bool:
    found = re.findall(rf"^\s*\W*{re.escape(splitter)}\s+\d+", text, re.MULTILINE | re.IGNORECASE)
    return _compare(len(found), relation, n)


def no_commas(text: str) -> bool:
    return "," not in text


def quotation(text: str) -> bool:
    body = text.strip()
    return len(body) > 1 and body[0] == '"' and body[-1] == '"'


def title(text: str) -> bool:
    return re.search(r"<<[^\n<>]+>>", text) is not None


def placeholders(text: str, n: int, relation: str = "at least") -> bool:
    return _compare(len(re.findall(r"\[[^\[\]\n]+\]", text)), relation, n)


def highlighted_sections(text: str, n: int, relation: str = "at least") -> bool:
    return _compare(len(re.findall(r"\*[^\n*]+\*", text)), relation, n)


def postscript(text: str, marker: str = "P.S.") -> bool:
    return re.search(rf"^\s*{re.escape(marker)}", text, re.MULTILINE | re.IGNORECASE) is not None


# ---- parameters -------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """One constraint field: its type ("count", "relation", "text", "letter", "words")."""

    type: str
    default: Any = _REQUIRED


def _check_value(kind: str, name: str, param: Param, value: Any) -> Any:
    where = f"constraint {kind}: field {name}"
    if param.type == "count":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{where}: expected a non-negative int, got {value!r}")
        return value
    if param.type == "relation":
        if value not in RELATIONS:
            raise ValueError(f"{where}: expected one of {', '.join(RELATIONS)}, got {value!r}")
        return value
    if param.type == "text":
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{where}: expected a non-empty string, got {value!r}")
        return value
    if param.type == "letter":
        if not isinstance(value, str) or len(value) != 1 or not value.isalpha():
            raise ValueError(f"{where}: expected a single letter, got {value!r}")
        return value
    if param.type == "words":
        words = [value] if isinstance(value, str) else value
        if (
            not isinstance(words, list)
            or not words
            or not all(isinstance(w, str) and w.strip() for w in words)
        ):
            raise ValueError(
                f"{where}: expected a non-empty list of non-empty strings, got {value!r}"
            )
        return list(words)
    raise AssertionError(f"unknown Param type {param.type!r}")


@dataclass(frozen=True)
class Verifier:
    """A constraint kind: its check, its fields and its English wording."""

    kind: str
    check: Callable[..., bool]
    describe: Callable[..., str]
    params: dict[str, Param] = field(default_factory=dict)

    def parse(self, raw: dict[str, Any]) -> dict[str, Any]:
        """The checked parameters (defaults filled in) of `raw` (a constraint dict, `kind` aside).

        Raises ValueError naming the constraint and field: an unknown field, a missing required
        one, or a value of the wrong type.
        """
        given = {k: v for k, v in raw.items() if k != "kind" and v is not None}
        unknown = sorted(set(given) - set(self.params))
        if unknown:
            known = ", ".join(self.params) or "none"
            raise ValueError(
                f"constraint {self.kind}: unknown field {unknown[0]!r} (fields: {known})"
            )
        out = {}
        for name, param in self.params.items():
            if name not in given:
                if param.default is _REQUIRED:
                    raise ValueError(f"constraint {self.kind}: field {name}: missing (required)")
                out[name] = param.default
                continue
            out[name] = _check_value(self.kind, name, param, given[name])
        return out


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _quoted(words: list[str]) -> str:
    return ", ".join(f'"{w}"' for w in words)


_COUNTED = {"relation": Param("relation"), "n": Param("count")}
_AT_LEAST = {"n": Param("count"), "relation": Param("relation", "at least")}


def _verifiers() -> dict[str, Verifier]:
    table = [
        Verifier("word_count", word_count,
                 lambda relation, n: f"Answer with {relation} {_plural(n, 'word')}.", _COUNTED),
        Verifier("sentence_count", sentence_count,
                 lambda relation, n: f"Answer with {relation} {_plural(n, 'sentence')}.", _COUNTED),
        Verifier("paragraph_count", paragraph_count,
                 lambda relation, n: f"Write {relation} {_plural(n, 'paragraph')}, separated by "
                 "blank lines.", _COUNTED),
        Verifier("include_keywords", include_keywords,
                 lambda keywords: f"Include the words {_quoted(keywords)}.",
                 {"keywords": Param("words")}),
        Verifier("forbidden_words", forbidden_words,
                 lambda words: f"Do not use the words {_quoted(words)}.", {"words": Param("words")}),
        Verifier("keyword_frequency", keyword_frequency,
                 lambda keyword, relation, n: f'Use the word "{keyword}" {relation} '
                 f"{_plural(n, 'time')}.", {"keyword": Param("text"), **_COUNTED}),
        Verifier("letter_frequency", letter_frequency,
                 lambda letter, relation, n: f'Use the letter "{letter}" {relation} '
                 f"{_plural(n, 'time')}.", {"letter": Param("letter"), **_COUNTED}),
        Verifier("uppercase", uppercase, lambda: "Answer in uppercase letters only."),
        Verifier("lowercase", lowercase, lambda: "Answer in lowercase letters only."),
        Verifier("capital_word_frequency", capital_word_frequency,
                 lambda relation, n: f"Use {relation} {_plural(n, 'word')} in all capital "
                 "letters.", _COUNTED),
        Verifier("json_format", json_format, lambda: "Answer in valid JSON."),
        Verifier("bullet_list", bullet_list,
                 lambda n, relation: f"Answer with {relation} {_plural(n, 'bullet point')} "
                 "in markdown (* item).",
                 {"n": Param("count"), "relation": Param("relation", "exactly")}),
        Verifier("starts_with", starts_with,
                 lambda phrase: f'Start your answer with "{phrase}".', {"phrase": Param("text")}),
        Verifier("ends_with", ends_with,
                 lambda phrase: f'End your answer with "{phrase}".', {"phrase": Param("text")}),
        Verifier("section_count", section_count,
                 lambda n, relation, splitter: f"Write {relation} {_plural(n, 'section')}, each "
                 f"starting with {splitter} X.",
                 {**_AT_LEAST, "splitter": Param("text", "Section")}),
        Verifier("no_commas", no_commas, lambda: "Do not use any commas."),
        Verifier("quotation", quotation, lambda: "Wrap your whole answer in double quotes."),
        Verifier("title", title, lambda: "Give your answer a title in double angle brackets, "
                 "like <<title>>."),
        Verifier("placeholders", placeholders,
                 lambda n, relation: f"Include {relation} {_plural(n, 'placeholder')} in square "
                 "brackets, like [name].", _AT_LEAST),
        Verifier("highlighted_sections", highlighted_sections,
                 lambda n, relation: f"Highlight {relation} {_plural(n, 'section')} with "
                 "markdown, like *this*.", _AT_LEAST),
        Verifier("postscript", postscript,
                 lambda marker: f"End with a postscript starting with {marker}",
                 {"marker": Param("text", "P.S.")}),
    ]  # fmt: skip
    return {v.kind: v for v in table}


VERIFIERS: dict[str, Verifier] = _verifiers()

__all__ = ["RELATIONS", "VERIFIERS", "Param", "Verifier"]
