"""The local executor: the shards of a build one after another in this process.

Generation is asyncio (each backend bounds its own concurrency) and CPU-bound filters use the
run context's process pool (`--workers`). The Ray executor runs this same loop inside each of
its tasks, one shard per task, so both executors write the same bytes.
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
        """Build `shards` here, in order; see `curation.executors.Executor.run`."""
        return asyncio.run(self._run(builder, staging, shards))

    async def _run(self, builder: Builder, staging: Staging, shards: list[int]) -> Usage:
        if not shards:
            return {}
        from curation.executors.ray import require_ray_data_llm

        # Checked where the shards run: on a cluster that is a Ray worker, not the driver.
        require_ray_data_llm(builder.recipe)
        ctx: RunContext = builder.open_context()
        try:
            for shard in shards:
                await builder.run_shard(ctx, staging, shard)
                builder.progress.shard_done(shard)
        finally:
            ctx.close()
        return builder.usage(ctx)
