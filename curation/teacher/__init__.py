"""The embedded teacher (DESIGN §11): a tiny char-level Llama trained on tinyworld tasks.

`thinkmix teacher build` trains it and writes a normal Hugging Face model dir, so the in-process
`transformers` backend, `transformers serve` and trl all load it the same way. Heavy modules
(`build`, `evaluate`) import torch and trl; this package root stays light.
"""

from curation.teacher.paths import EMBEDDED_DIR, resolve_model

__all__ = ["EMBEDDED_DIR", "resolve_model"]
