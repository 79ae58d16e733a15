"""Prompt templates as files: `generators/prompts/NAME.txt`, with `$field` placeholders.

Templates use `string.Template` syntax (`$prompt`, `${topic}`; `$$` for a literal dollar sign), so
braces in a prompt (JSON, LaTeX) need no escaping. A stage names its shipped template and the
fields it fills; a recipe may point the stage at its own file instead (a path relative to the
recipe's folder). Both are checked the same way: a template that lacks a field the stage fills,
or uses one the stage does not know, is an error that names the file and the fields.

    template = load_template("its_feedback", fields=("prompt", "response"))
    text = template.render(prompt="...", response="...")
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path

PROMPTS_DIR = Path(__file__).parent / "prompts"


@dataclass(frozen=True, slots=True)
class PromptTemplate:
    """One template: where it came from, its text and the fields it uses."""

    source: str  # the shipped name or the file path, for error messages and manifests
    text: str

    def fields(self) -> set[str]:
        found = set()
        for _, named, braced, invalid in string.Template.pattern.findall(self.text):
            if invalid:
                continue
            found.add(named or braced)
        return found - {""}

    def render(self, **values: str) -> str:
        return string.Template(self.text).substitute(values)


def template_path(name_or_path: str, base_dir: Path | None = None) -> Path:
    """A shipped name (`its_edit`) -> its file; anything with a `/` or a suffix -> a user file."""
    if "/" in name_or_path or Path(name_or_path).suffix:
        path = Path(name_or_path)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        return path
    return PROMPTS_DIR / f"{name_or_path}.txt"


def load_template(
    name_or_path: str,
    fields: tuple[str, ...],
    base_dir: Path | None = None,
    required: tuple[str, ...] | None = None,
) -> PromptTemplate:
    """Read and check a template; raise ValueError saying which fields are wrong and how to fix.

    `fields` are those the stage fills in; `required` (default: all of them) must appear.
    """
    path = template_path(name_or_path, base_dir)
    if not path.is_file():
        shipped = ", ".join(sorted(p.stem for p in PROMPTS_DIR.glob("*.txt")))
        raise ValueError(
            f"prompt template {name_or_path!r} not found (looked at {path}); give a file path "
            f"(relative to the recipe's folder) or a shipped name: {shipped}"
        )
    template = PromptTemplate(str(path), path.read_text(encoding="utf-8"))
    try:
        string.Template(template.text).substitute(dict.fromkeys(fields, ""))
    except KeyError as exc:
        raise ValueError(
            f"prompt template {path}: unknown field ${exc.args[0]}; it may use only "
            f"{', '.join('$' + f for f in fields)} (write $$ for a literal dollar sign)"
        ) from None
    except ValueError as exc:  # a lone `$` or `$1`
        raise ValueError(f"prompt template {path}: {exc}; write $$ for a literal $") from None
    missing = [f for f in (fields if required is None else required) if f not in template.fields()]
    if missing:
        raise ValueError(
            f"prompt template {path}: missing field(s) {', '.join('$' + f for f in missing)}; "
            "the stage fills them in, so the template must place them"
        )
    return template


def conversation_text(turns: list[dict[str, str]]) -> str:
    """Prompt turns as plain text for a template: a single user turn is just its content."""
    if len(turns) == 1 and turns[0].get("role") == "user":
        return turns[0]["content"]
    return "\n\n".join(f"{t['role'].capitalize()}: {t['content']}" for t in turns)
