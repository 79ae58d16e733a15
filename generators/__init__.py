"""Teacher backends and generation strategies; importing this package registers them."""

from generators import (
    its,  # noqa: F401
    mcq_synth,  # noqa: F401
    multi_sample,  # noqa: F401
    reasoning_off,  # noqa: F401
    transformers_backend,  # noqa: F401  (registers "transformers")
    variation,  # noqa: F401
)
