"""Pure code helpers: fenced-block extraction and Tree-sitter syntax checking. No stages here.

    >>> extract_code("<think>try `x`</think>Here:\\n```python\\nprint(1)\\n```")
    'print(1)'
    >>> syntax_error("def f(:\\n    pass", "python")
    "line 1, column 7: missing ')'"

Tree-sitter and its grammars are optional packages, imported on first use with an install hint
(`pip install tree-sitter tree-sitter-python tree-sitter-cpp tree-sitter-java`).
"""

from __future__ import annotations

import ast
import importlib
import re
from dataclasses import dataclass
from functools import cache
from typing import Literal

from filters.answers import strip_think

# Fence label -> language; an unlabeled fence has language None.
ALIASES = {
    "python": "python",
    "python3": "python",
    "py": "python",
    "py3": "python",
    "cpp": "cpp",
    "c++": "cpp",
    "cc": "cpp",
    "cxx": "cpp",
    "java": "java",
}
GRAMMARS = {"python": "tree_sitter_python", "cpp": "tree_sitter_cpp", "java": "tree_sitter_java"}
_PACKAGES = {"python": "tree-sitter-python", "cpp": "tree-sitter-cpp", "java": "tree-sitter-java"}

# An opening fence at the start of a line (up to 3 spaces in), a label, the body, a closing fence
# alone on its line. An unclosed last fence (a truncated generation) is no block.
_FENCE = re.compile(
    r"^[ ]{0,3}```[ \t]*(?P<label>[^\s`]*)[^\n`]*\n(?P<body>.*?)^[ ]{0,3}```[ \t]*$",
    re.MULTILINE | re.DOTALL,
)


@dataclass(frozen=True, slots=True)
class CodeBlock:
    language: str | None  # normalised ("python", "cpp", "java"), the raw label, or None
    code: str


def code_blocks(text: str) -> list[CodeBlock]:
    """Every closed fenced block in `text`, in order."""
    blocks = []
    for match in _FENCE.finditer(text):
        label = match.group("label").lower()
        language = ALIASES.get(label, label) if label else None
        blocks.append(CodeBlock(language, match.group("body").rstrip("\n")))
    return blocks


def extract_blocks(output: str, language: str = "python", unlabeled: bool = True) -> list[str]:
    """The code of the `language` blocks (and unlabeled ones, if `unlabeled`) in the answer part
    of `output` (after `</think>`; a block inside the reasoning never counts)."""
    answer = strip_think(output)
    return [
        b.code
        for b in code_blocks(answer)
        if b.language == language or (unlabeled and b.language is None)
    ]


def extract_code(
    output: str,
    language: str = "python",
    which: Literal["last", "first", "all"] = "last",
    unlabeled: bool = True,
) -> str | None:
    """One program from `output`: the last (or first) block, or all blocks joined; None if none."""
    if which not in ("last", "first", "all"):
        raise ValueError(f"extract_code: which must be 'last', 'first' or 'all', got {which!r}")
    blocks = extract_blocks(output, language, unlabeled)
    if not blocks:
        return None
    if which == "all":
        return "\n\n".join(blocks)
    return blocks[-1] if which == "last" else blocks[0]


@cache
def _language(language: str):
    if language not in GRAMMARS:
        raise ValueError(f"no Tree-sitter grammar for {language!r}; known: {', '.join(GRAMMARS)}")
    try:
        import tree_sitter

        grammar = importlib.import_module(GRAMMARS[language])
    except ImportError as exc:
        raise ImportError(
            f"Tree-sitter parsing of {language} needs the packages tree-sitter and "
            f"{_PACKAGES[language]}: pip install tree-sitter {_PACKAGES[language]}"
        ) from exc
    return tree_sitter.Language(grammar.language())


def ensure_grammar(language: str) -> None:
    """Raise now (with the install hint) if `language` cannot be parsed."""
    _language(language)


def _first_error(node):
    if node.is_missing or node.type == "ERROR":
        return node
    for child in node.children:
        if child.has_error:
            found = _first_error(child)
            if found is not None:
                return found
    return None


def syntax_error(code: str, language: str = "python") -> str | None:
    """None when Tree-sitter parses `code` cleanly, else where the first error is (1-based):
    "line 3, column 5: unexpected 'foo'" or "line 3, column 5: missing ';'"."""
    import tree_sitter

    source = code.encode("utf-8")
    tree = tree_sitter.Parser(_language(language)).parse(source)
    if not tree.root_node.has_error:
        return None
    node = _first_error(tree.root_node) or tree.root_node
    row, column = node.start_point
    where = f"line {row + 1}, column {column + 1}"
    if node.is_missing:
        return f"{where}: missing {node.type!r}"
    snippet = source[node.start_byte : node.end_byte].decode("utf-8", "replace")
    snippet = snippet.splitlines()[0][:40] if snippet.strip() else snippet[:40]
    return f"{where}: unexpected {snippet!r}"


def python_compile_error(code: str) -> str | None:
    """None when CPython's own parser accepts `code` (no execution), else where it fails.

    Tree-sitter's Python grammar is lenient where CPython is not (it accepts the Python 2
    `print "x"` statement), so the Python check can add this one."""
    try:
        ast.parse(code)
    except SyntaxError as exc:
        return f"line {exc.lineno}, column {exc.offset}: {exc.msg}"
    except (ValueError, RecursionError, MemoryError) as exc:  # NUL bytes, absurd nesting
        return f"{type(exc).__name__}: {exc}"[:200]
    return None
