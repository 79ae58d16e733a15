"""The local executor: every unfinished shard of a build at once, streamed in this process.

Generation is asyncio (each backend bounds its own concurrency) and CPU-heavy filters use the
run context's process pool (`--workers`); `curation.engine` moves the rows. The Ray executor
runs this same code inside each of its tasks, one shard per task, so both executors write the
same bytes.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from curation.executors import Usage

if TYPE_CHECKING:
    from curation.context import RunContext
    from curation.runner import Builder
    from curation.store import Staging


class LocalExecutor:
    name = "local"

    def run(self, builder: Builder, staging: Staging, shards: list[int]) -> Usage:
        """Build `shards` here, all at once; see `curation.executors.Executor.run`."""
        return asyncio.run(self._run(builder, staging, shards))

    def run_global(self, builder: Builder, pre: Staging, staging: Staging) -> Usage:
        """The global phase here; see `curation.executors.Executor.run_global`."""
        return asyncio.run(self._run_global(builder, pre, staging))

    async def _run_global(self, builder: Builder, pre: Staging, staging: Staging) -> Usage:
        ctx: RunContext = builder.open_context()
        try:
            await builder.run_global(ctx, pre, staging)
        finally:
            ctx.close()
        return builder.usage(ctx)

    async def _run(self, builder: Builder, staging: Staging, shards: list[int]) -> Usage:
        if not shards:
            return {}
        from curation.executors.ray import require_ray_data_llm

        # Checked where the shards run: on a cluster that is a Ray worker, not the driver.
        require_ray_data_llm(builder.recipe)
        ctx: RunContext = builder.open_context()
        try:
            await builder.run_shards(ctx, staging, shards)
        finally:
            ctx.close()
        return builder.usage(ctx)
