"""The local executor: every unfinished shard of a build at once, streamed in this process.

Generation is asyncio (each backend bounds its own concurrency) and CPU-heavy filters use the
run context's process pool (`--workers`); `curation.engine` moves the rows. The Ray executor
runs this same code inside each of its tasks, one shard per task, so both executors write the
same bytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from curation.executors import Usage

if TYPE_CHECKING:
    from curation.context import RunContext
    from curation.runner import Builder
    from curation.store import Staging


class LocalExecutor:
    name = "local"

    def run(self, builder: Builder, staging: Staging, shards: list[int]) -> Usage:
        """Build `shards` here, all at once; see `curation.executors.Executor.run`."""
        if not shards:
            return {}
        from curation.executors.ray import require_ray_data_llm

        # Checked where the shards run: on a cluster that is a Ray worker, not the driver.
        require_ray_data_llm(builder.recipe)
        return asyncio.run(_in_context(builder, builder.run_shards, staging, shards))

    def run_global(self, builder: Builder, pre: Staging, staging: Staging) -> Usage:
        """The global phase here; see `curation.executors.Executor.run_global`."""
        return asyncio.run(_in_context(builder, builder.run_global, pre, staging))


async def _in_context(builder: Builder, work: Callable[..., Awaitable[None]], *args: Any) -> Usage:
    """`work(ctx, *args)` with a fresh run context, closed after; the usage it answered."""
    ctx: RunContext = builder.open_context()
    try:
        await work(ctx, *args)
    finally:
        ctx.close()
    return builder.usage(ctx)
