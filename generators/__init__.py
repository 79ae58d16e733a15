"""Teacher backends and generation strategies; importing this package registers them."""

from generators import (
    multi_sample,  # noqa: F401
    transformers_backend,  # noqa: F401  (registers "transformers")
)
