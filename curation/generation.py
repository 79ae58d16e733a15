"""Model requests and responses: the engine's side of the teacher interface.

A `GenerationRequest` asks for one sample; `sample_index` and `seed` make it reproducible, so the
same request always has the same answer and the request cache can key on it. Backends are async so
I/O-bound ones (HTTP) and compute-bound ones (an in-process model) share the runner.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from curation.record import Message, stable_hash

# Bump with any change that alters what a cached response means.
CACHE_VERSION = 1


@dataclass(frozen=True, slots=True)
class SamplingParams:
    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int = 512

    def __post_init__(self) -> None:
        if not 0 <= self.temperature <= 5:
            raise ValueError(f"temperature must be in [0, 5], got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")

    def as_dict(self) -> dict[str, float | int]:
        return {"temperature": self.temperature, "top_p": self.top_p, "max_tokens": self.max_tokens}


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """One sample of one conversation. `messages` include the system prompt."""

    messages: tuple[tuple[str, str], ...]  # (role, content) pairs, hashable
    sampling: SamplingParams = field(default_factory=SamplingParams)
    sample_index: int = 0
    seed: int = 0

    @classmethod
    def build(
        cls,
        messages: list[Message],
        sampling: SamplingParams,
        sample_index: int = 0,
        seed: int = 0,
    ) -> GenerationRequest:
        turns = tuple((m["role"], m["content"]) for m in messages)
        return cls(turns, sampling, sample_index, seed)

    def message_dicts(self) -> list[Message]:
        return [{"role": role, "content": content} for role, content in self.messages]

    def key(self, backend: str, model: str) -> str:
        """The request-cache key: backend, model, messages, sampling, sample index and seed."""
        return stable_hash(
            CACHE_VERSION,
            backend,
            model,
            self.messages,
            self.sampling.as_dict(),
            self.sample_index,
            self.seed,
            length=32,
        )


@dataclass(slots=True)
class GenerationResponse:
    text: str
    finish_reason: str = "stop"  # stop | length | error
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None  # set when every retry failed; the row goes to the failed split
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "finish_reason": self.finish_reason,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "error": self.error,
        }
