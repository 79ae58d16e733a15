"""Executors: who runs the shards of a build, apart from the stages they run.

The runner (`curation.runner.Builder`) decides *what* a build is: its version, which shards are
still missing from staging, the manifest and the commit. An executor decides *where* the missing
shards run:

- `local` (`executors/local.py`): all at once in this process, streamed (`curation.engine`):
  asyncio for the model calls and a process pool for CPU-heavy filters (the default);
- `ray` (`executors/ray.py`): one Ray task per shard, on a local Ray or a cluster. Each task
  rebuilds the build from a `BuildSpec` (recipe file + overrides, store root, cache path), so
  the store and the request cache must live on a filesystem every node shares.

Either way a shard lands in the version's staging area with its "done" marker, so a build run
with one executor can be finished with the other, and the shards are byte-identical.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from curation.runner import Builder
    from curation.store import Staging

EXECUTORS = ("local", "ray")

Usage = dict[str, dict[str, int]]  # teacher name -> TeacherUsage.as_dict()


class ExecutorError(ValueError):
    """An executor that cannot run as asked (an unknown name, a missing optional package)."""


@dataclass(frozen=True)
class BuildSpec:
    """Everything a fresh process needs to rebuild a `Builder`; plain data, so it pickles.

    Paths are absolute: a Ray worker's working directory is not the driver's.
    """

    recipe_path: Path
    overrides: tuple[str, ...]
    store_root: Path
    cache_path: Path
    workers: int
    version: str  # what the driver computed; a worker that disagrees runs other code or recipe


class Executor(Protocol):
    name: str

    def run(self, builder: Builder, staging: Staging, shards: list[int]) -> Usage:
        """Build `shards` (none of them done yet) into `staging`; return the summed usage.

        Streams the stages before any global stage; the builder calls
        `progress.shard_done(k)` as each shard finishes. A shard that fails leaves the others'
        staged files in place, so running the build again resumes.
        """
        ...

    def run_global(self, builder: Builder, pre: Staging, staging: Staging) -> Usage:
        """Run the global phase (`Builder.run_global`) of a build whose shards are all in `pre`."""
        ...


def make_executor(
    name: str,
    address: str | None = None,
    task_cpus: float | None = None,
    num_cpus: int | None = None,
) -> Executor:
    """`local` or `ray`; `address`, `task_cpus` and `num_cpus` only mean something to `ray`."""
    if name == "local":
        if address is not None or task_cpus is not None:
            option = "--address" if address is not None else "--task-cpus"
            raise ExecutorError(f"{option} is an option of the Ray executor: add --executor ray")
        from curation.executors.local import LocalExecutor

        return LocalExecutor()
    if name == "ray":
        from curation.executors.ray import RayExecutor

        return RayExecutor(address=address, task_cpus=task_cpus, num_cpus=num_cpus)
    raise ExecutorError(f"unknown executor {name!r}; expected one of: {', '.join(EXECUTORS)}")


def add_usage(total: Usage, part: Usage) -> Usage:
    """Sum per-teacher usage counters (shards built in different processes)."""
    for name, values in part.items():
        into = total.setdefault(name, {})
        for key, value in values.items():
            into[key] = into.get(key, 0) + value
    return total
