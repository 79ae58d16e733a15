"""The Ray executor: each unfinished shard of a build is one Ray task.

    thinkmix build RECIPE --executor ray                   # a local Ray with this machine's cores
    thinkmix build RECIPE --executor ray --address auto    # join the cluster of `ray start --head`

The driver (the `thinkmix build` process) works out the version and the shards still missing
from staging, exactly as the local executor does, and submits `build_shard(spec, k)` for each.
A task rebuilds the build from the `BuildSpec` (reloads the recipe file with the same overrides,
opens the store and the request cache at the same absolute paths), runs the local executor's
loop for its one shard and writes it into the version's staging area. When every task is back
the driver writes the manifest and commits, as a local build does.

Design choices:
- Tasks, not a `ray.data` pipeline: a shard is the unit of resume and of byte-identity, and a
  task per shard keeps the stage code unchanged (stages stream lists of records, not Arrow
  blocks). Generation inside a shard already runs concurrently (asyncio, bounded per backend).
- The store and the request cache must be on a filesystem every node shares (NFS, a mounted
  bucket with POSIX semantics): tasks write staged shards and cache rows there directly.
- Ray retries a task whose worker died (its default); a retried shard is safe, since staged
  files are replaced atomically and finished requests come from the cache. An exception raised
  by a shard's code is not retried: it is raised again in the driver after the other shards
  finished, so running the build again only redoes the failed ones.
- Generation through `ray.data.llm` is a teacher's choice, not the executor's: a teacher with
  `backend: ray` (generators/ray_backend.py) sends its requests through a `ray.data.llm`
  processor (HTTP or vLLM engine) on the cluster the task runs in. Shard tasks then reserve no
  CPUs by default, so they cannot starve the processors' actors (see `_task_cpus`).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import socket
from typing import TYPE_CHECKING, Any

from curation.executors import BuildSpec, ExecutorError, Usage, add_usage

if TYPE_CHECKING:
    from curation.recipe import Recipe
    from curation.runner import Builder
    from curation.store import Staging

RAY_HINT = "the ray executor needs ray: pip install 'thinkmix[ray]' (or 'ray[data]>=2.60')"


def import_ray() -> Any:
    """`ray`, or an ExecutorError with the install hint."""
    try:
        import ray
    except ImportError as exc:
        raise ExecutorError(f"{RAY_HINT} ({exc})") from None
    return ray


class RayExecutor:
    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        task_cpus: float | None = None,
        num_cpus: int | None = None,
    ) -> None:
        """`address`: None starts a local Ray with `num_cpus` (default: this machine's cores)
        unless this process is already connected; "auto" or "ray://HOST:10001" joins a cluster.
        `task_cpus`: CPUs Ray reserves per shard task (0.5 packs two shards per core); None:
        1, or 0 when a teacher generates through ray.data.llm (see `_task_cpus`).
        """
        if task_cpus is not None and task_cpus < 0:
            raise ExecutorError(f"--task-cpus must be >= 0, got {task_cpus}")
        if num_cpus is not None and address is not None:
            raise ExecutorError(
                "num_cpus sizes a local Ray; a cluster joined by --address has its own"
            )
        self.address, self.task_cpus, self.num_cpus = address, task_cpus, num_cpus
        self.ray = import_ray()  # before any work, so a missing package fails at once

    def run(self, builder: Builder, staging: Staging, shards: list[int]) -> Usage:
        """Build `shards` as Ray tasks; see `curation.executors.Executor.run`."""
        if not shards:
            return {}
        ray = self.ray
        connected = self._connect()
        try:
            spec, task = self._task(builder, build_shard)
            pending = {task.remote(spec, k, staging.version): k for k in shards}
            usage: Usage = {}
            failures: list[tuple[int, BaseException]] = []
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                shard = pending.pop(done[0])
                try:
                    add_usage(usage, ray.get(done[0]))
                except ray.exceptions.RayError as exc:
                    failures.append((shard, exc))
                    continue
                builder.progress.shard_done(shard)
        finally:
            if connected:  # stops a Ray started here; only disconnects from a cluster
                ray.shutdown()
        if failures:
            raise _failure(ray, failures)
        return usage

    def run_global(self, builder: Builder, pre: Staging, staging: Staging) -> Usage:
        """The global phase as one Ray task; see `curation.executors.Executor.run_global`."""
        ray = self.ray
        connected = self._connect()
        try:
            spec, task = self._task(builder, build_global)
            try:
                return ray.get(task.remote(spec, pre.version))
            except ray.exceptions.RayError as exc:
                cause = _task_cause(ray, exc)
                if cause is None:
                    raise
                raise cause from None
        finally:
            if connected:
                ray.shutdown()

    def _task(self, builder: Builder, body: Any) -> tuple[BuildSpec, Any]:
        """The spec a task rebuilds the build from, and `body` as a Ray remote function."""
        cpus = self._task_cpus(builder.recipe)
        # A task runs the filters' process pool with as many workers as it has CPUs.
        spec = dataclasses.replace(builder.spec(), workers=max(1, int(cpus)))
        return spec, self.ray.remote(num_cpus=cpus)(body)

    def _task_cpus(self, recipe: Recipe) -> float:
        if self.task_cpus is not None:
            return self.task_cpus
        # A `ray` teacher's ray.data.llm processors reserve their own CPUs/GPUs; shard tasks
        # that held CPUs while waiting for them could take every CPU and starve them forever.
        return 0.0 if any(t.backend == "ray" for t in recipe.teachers.values()) else 1.0

    def _connect(self) -> bool:
        """Connect to Ray unless already connected; True when this call connected."""
        ray = self.ray
        if ray.is_initialized():
            return False
        if self.address is None:
            ray.init(num_cpus=self.num_cpus or os.cpu_count(), include_dashboard=False)
            return True
        try:
            ray.init(address=self.address)
        except ConnectionError as exc:
            raise ExecutorError(
                f"--address {self.address}: no Ray cluster answered ({exc}); start one with "
                "`ray start --head` or leave --address out to start a local Ray"
            ) from None
        return True


def _task_cause(ray: Any, exc: BaseException) -> Exception | None:
    """The exception a task's own code raised (a SourceError stays one), or None."""
    cause = exc.cause if isinstance(exc, ray.exceptions.RayTaskError) else None
    return cause if isinstance(cause, Exception) else None


def _failure(ray: Any, failures: list[tuple[int, BaseException]]) -> BaseException:
    """The first failed shard's own exception (a SourceError stays a SourceError), with a note."""
    shards = sorted(k for k, _ in failures)
    shard, exc = min(failures, key=lambda pair: pair[0])
    cause = _task_cause(ray, exc)
    if cause is None:
        from curation.runner import BuildError

        cause = BuildError(f"shard {shard}: the Ray task failed: {type(exc).__name__}: {exc}")
    cause.add_note(
        f"shard(s) {shards} failed on Ray; shards that finished stay staged, so running the same "
        "build again redoes only these"
    )
    return cause


def _task_builder(spec: BuildSpec, what: str) -> Builder:
    from curation.recipe import RecipeError
    from curation.runner import Builder, BuildError

    try:
        return Builder.from_spec(spec)
    except RecipeError as exc:
        raise BuildError(
            f"{what} on Ray node {socket.gethostname()}: {exc}; the recipe, the store "
            "and the request cache must be on a filesystem every node shares (docs/cluster.md)"
        ) from None


def build_shard(spec: BuildSpec, shard: int, staging_name: str) -> Usage:
    """The body of one Ray task: rebuild the build from `spec` and stream shard `shard` into
    the staging area `staging_name` (the version's, or its pre-global one)."""
    from curation.executors.local import LocalExecutor

    builder = _task_builder(spec, f"shard {shard}")
    try:
        staging = builder.store.staging(builder.dataset, staging_name)
        if staging.shard_done(shard):  # a retried task whose first try finished the shard
            return {}
        return add_usage({}, LocalExecutor().run(builder, staging, [shard]))
    finally:
        builder.cache.close()


def build_global(spec: BuildSpec, pre_name: str) -> Usage:
    """The body of the global phase's one Ray task (it reads every streamed shard)."""
    from curation.executors.local import LocalExecutor

    builder = _task_builder(spec, "the global phase")
    try:
        pre = builder.store.staging(builder.dataset, pre_name)
        staging = builder.store.staging(builder.dataset, builder.version)
        return add_usage({}, LocalExecutor().run_global(builder, pre, staging))
    finally:
        builder.cache.close()


def require_ray_data_llm(recipe: Recipe) -> None:
    """Raise a clear error when a teacher asks for ray.data.llm's vLLM engine and vLLM is missing.

    Without this check every request of such a teacher would fail inside Ray and the build
    would end with an empty `train` split. It runs where the shards run (see local.py).
    """
    for name, spec in recipe.teachers.items():
        options = spec.model_extra or {}
        if spec.backend != "ray" or options.get("engine", "http") != "vllm":
            continue
        missing = [m for m in ("ray.data.llm", "vllm") if not _importable(m)]
        if missing:
            raise ExecutorError(
                f"teacher {name!r} (backend: ray, engine: vllm) generates with ray.data.llm's "
                f"vLLM engine, but {' and '.join(missing)} cannot be imported on "
                f"{socket.gethostname()}: pip install 'thinkmix[ray]' vllm on every node that "
                "runs shards (vLLM needs a CUDA GPU), or serve the model and use engine: http"
            )


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a parent package is missing
        return False
