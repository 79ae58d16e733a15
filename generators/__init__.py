"""Teacher backends and generation strategies; importing this package registers them."""

from generators import (
    its,  # noqa: F401
    local_server,  # noqa: F401  (registers "local-server")
    mcq_synth,  # noqa: F401
    multi_sample,  # noqa: F401
    openai_backend,  # noqa: F401  (registers "openai")
    preference_pairs,  # noqa: F401
    ray_backend,  # noqa: F401  (registers "ray")
    reasoning_off,  # noqa: F401
    transformers_backend,  # noqa: F401  (registers "transformers")
    variation,  # noqa: F401
    vllm_backend,  # noqa: F401  (registers "vllm")
)
