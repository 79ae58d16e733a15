"""The one interface every teacher backend speaks: requests in, responses out.

The request and response types live in `curation.generation` (the engine uses them without
importing this package); a backend implements `Backend` and registers itself by name.
"""

from __future__ import annotations

from typing import Protocol

from curation.generation import (
    CACHE_VERSION,
    GenerationRequest,
    GenerationResponse,
    SamplingParams,
)

__all__ = ["CACHE_VERSION", "Backend", "GenerationRequest", "GenerationResponse", "SamplingParams"]


class Backend(Protocol):
    """A teacher. `name` is the backend kind and `model` the model id, both part of cache keys."""

    name: str
    model: str

    async def generate(self, requests: list[GenerationRequest]) -> list[GenerationResponse]:
        """One response per request, in order. Never raises for a single failed request."""
        ...

    def close(self) -> None: ...
