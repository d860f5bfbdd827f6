"""The Ray executor: a stage's parts as Ray tasks (or calls to actors that keep a model loaded), on a cluster.

Everything else is the local executor's: the driver plans, decides what to skip, records the manifest in `todo`'s
order and writes run.toml, so a run on Ray leaves exactly the files a local run leaves. What differs:

- Parts run anywhere; the run directory must be a path every node sees (a network file system) or an object store
  (`synth.storage`). A part's files are committed by the task that made it: a temporary name and a rename, and on
  an object store one object per file.
- A task's LLM journal lives on its node's local disk (SQLite's WAL must not sit on a network file system) and is
  copied to `OUT/_journals/` every `snapshot_seconds` and when the part ends; a task retried on another node (a
  lost node, a killed driver's rerun) seeds its journal from that copy, so answers already given are not bought
  again. Answers of a local run (`OUT/_journal.sqlite`) are shipped once as `OUT/_journals/_local.sqlite`, which
  every task reads too; a local run folds the snapshots back into `OUT/_journal.sqlite`.
- Every engine takes its requests and tokens from one budget actor per endpoint and model (`ray_budget`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections import deque
from collections.abc import Iterator
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from synth.errors import ConfigError
from synth.executor.choice import NEEDS_RAY, ExecutorSettings

try:  # the optional `ray` extra (ExecutorSettings.check asks for it before this module is imported)
    import ray
    from ray.util import ActorPool
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
except ImportError as exc:
    raise ConfigError(f"the Ray executor {NEEDS_RAY}") from exc

from synth import storage
from synth.embed.base import Embedder
from synth.executor import periodic, ray_budget
from synth.executor.base import Executor, PartPlan, PartWork, execute_part
from synth.executor.placement import placing
from synth.llm import endpoint_stats
from synth.llm.journal import SEED, SNAPSHOTS, copy_journal, merge_journal, set_journal_locator, ship_seed

TASK_RETRIES = 3
"""Times a part lost with its node (or worker process) is run again elsewhere; errors of the stage are not retried."""


def connect(address: str | None) -> None:
    """Join the cluster at `address` (or start a Ray instance on this machine) once per process."""
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=True)


def snapshot_path(out: Path, plan: PartPlan) -> Path:
    return Path(out) / SNAPSHOTS / f"{plan.key.replace('/', '--')}.sqlite"


def journal_copies(out: Path) -> str:
    """Where a node keeps the journal copies of stage `out`, as a pattern under `journal_root()`: `NODE/RUN/`."""
    return f"*/{hashlib.sha256(str(Path(out).resolve()).encode()).hexdigest()[:16]}"


def journal_root() -> Path:
    return Path(tempfile.gettempdir()) / "synth-journals"


@contextlib.contextmanager
def part_journal(out: Path, plan: PartPlan, every: float) -> Iterator[None]:
    """Open the part's journals on this node's disk, seeded from the part's snapshot; copy it back every `every`
    seconds and when the part ends (finished or not). The copy is held (flock on `PART.lock`) while it is in use,
    so that `sweep_journals` never takes it from a live worker."""
    node = ray.get_runtime_context().get_node_id()
    local = journal_root() / journal_copies(out).replace("*", node[:16], 1) / snapshot_path(out, plan).name
    local.parent.mkdir(parents=True, exist_ok=True)
    held = os.open(local.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(held, fcntl.LOCK_EX)
    shared = storage.local_copy(snapshot_path(out, plan))  # fetched from an object store on another node
    if shared.exists():
        merge_journal(shared, local)
    set_journal_locator(lambda _out: local, storage.local_copy(Path(out) / SNAPSHOTS / SEED))

    def ship() -> bool:
        if local.exists():
            copy_journal(local, shared)
        return True

    try:
        with periodic.every(every, ship, "synth-journal-snapshots"):
            yield
    finally:
        set_journal_locator(None)
        if local.exists():
            copy_journal(local, shared)
            local.unlink()  # the part is done: what a retry would need is in the snapshot
        local.with_suffix(".lock").unlink(missing_ok=True)
        os.close(held)


def sweep_node(out: Path, mounts: list[storage.Mount]) -> int:
    """Remove the journal copies of stage `out` that workers killed on this machine left (any node folder: nodes of
    one machine share its disk), after adding their answers to the part's snapshot; a copy whose lock a live worker
    holds is left alone. Returns the copies removed."""
    storage.install(mounts)
    removed = 0
    for lock in sorted(journal_root().glob(f"{journal_copies(out)}/*.lock")):
        try:
            held = os.open(lock, os.O_RDWR)  # never created again here: the sweep of a node sharing this disk
        except FileNotFoundError:  # may have removed it (and its folder) since the listing
            continue
        try:
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(held)
            continue  # a live worker's
        try:
            local = lock.with_suffix(".sqlite")
            if local.exists():
                shared = storage.local_copy(Path(out) / SNAPSHOTS / local.name)
                if shared.exists():
                    merge_journal(shared, local)
                copy_journal(local, shared)  # answers given after the last snapshot are kept
                for leftover in (local, local.with_name(local.name + "-wal"), local.with_name(local.name + "-shm")):
                    leftover.unlink(missing_ok=True)
                removed += 1
            lock.unlink(missing_ok=True)
        finally:
            os.close(held)
        with contextlib.suppress(OSError):
            lock.parent.rmdir()  # the run's folder, once it is empty
    return removed


def sweep_journals(out: Path) -> int:
    """`sweep_node` on every live node of the cluster, at the start of a stage and when it succeeded. A node that
    leaves between the listing and its task is skipped: its disk, and the copies on it, left with it."""
    tasks = [ray.remote(sweep_node).options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(
        node["NodeID"], soft=False)).remote(out, storage.mounts()) for node in ray.nodes() if node["Alive"]]
    removed = 0
    for task in tasks:
        try:
            removed += ray.get(task)
        except (ray.exceptions.TaskUnschedulableError, ray.exceptions.NodeDiedError,
                ray.exceptions.WorkerCrashedError):
            continue
    return removed


def run_part(work: PartWork, plan: PartPlan, out: Path, settings: ExecutorSettings, budgets: Any,
             mounts: list[storage.Mount]) -> dict:
    """One part on a worker: the cluster's budgets, the driver's object-store mounts and a node-local journal around
    the local executor's step."""
    ray_budget.install(budgets)
    storage.install(mounts)
    before = work.endpoint_usage()  # an actor's engine outlives the part: its share is the difference
    with part_journal(out, plan, settings.snapshot_seconds):
        try:
            entry = execute_part(work, plan, out)
            return {**entry, "endpoints": endpoint_stats.since(work.endpoint_usage(), before)}  # read before close
        finally:
            work.close()  # the journal is closed, so whole, before its last snapshot; the next part opens its own


@ray.remote(max_retries=TASK_RETRIES)
def _part_task(work: PartWork, plan: PartPlan, out: Path, settings: ExecutorSettings, budgets: Any,
               mounts: list[storage.Mount]) -> dict:
    return run_part(work, plan, out, settings, budgets, mounts)


class PartActor:
    """Keeps one copy of a stage (its loaded model) for many parts; its connections are closed after each part.
    Before the stage is prepared it embeds the corpus that `prepare` needs (`embed`), with the same model."""

    def __init__(self, work: PartWork):
        self.work = work

    def embed(self, texts: list[str]) -> tuple[np.ndarray, dict[str, Any]]:
        """The vectors of `texts`, and what embedding them took of each endpoint (an API embedder's)."""
        embedder = self.work.prepare_embedder()
        assert embedder is not None  # only a stage with one is given to `spread_embedding`
        before = embedder.endpoint_usage()
        vectors = embedder.backend.embed(texts)
        return vectors, endpoint_stats.since(embedder.endpoint_usage(), before)

    def run(self, plan: PartPlan, out: Path, settings: ExecutorSettings, budgets: Any,
            mounts: list[storage.Mount]) -> dict:
        return run_part(self.work, plan, out, settings, budgets, mounts)


class ModelActors:
    """The actors of a stage that holds a model, started on first need: by `prepare`'s corpus embedding, else by the
    first part. One GPU each when the cluster has GPUs (as many actors as GPUs), one CPU each otherwise."""

    def __init__(self, work: PartWork, settings: ExecutorSettings):
        self.work = work
        self.settings = settings
        self.actors: list[Any] = []
        self.ref: Any = None

    def started(self, work: Any = None) -> list[Any]:
        """The actors, started on `work` (an object reference; the stage as it is now when None) if not yet."""
        if not self.actors:
            connect(self.settings.address)
            gpus = int(ray.cluster_resources().get("GPU", 0))
            count = self.settings.model_actors or gpus or 2
            actor = ray.remote(PartActor).options(num_gpus=1 if gpus else 0, num_cpus=0 if gpus else 1,
                                                  max_restarts=TASK_RETRIES, max_task_retries=TASK_RETRIES)
            self.ref = work if work is not None else ray.put(self.work)  # held: a restarted actor is built from it
            self.actors = [actor.remote(self.ref) for _ in range(count)]
        return self.actors

    def prepared(self, work: Any) -> list[Any]:
        """Actors on the prepared stage `work` (an object reference). Those that embedded the corpus are replaced:
        Ray restarts a lost actor from the arguments it was created with, which must be the prepared stage."""
        self.close()
        return self.started(work)

    def close(self) -> None:
        for a in self.actors:
            ray.kill(a)
        self.actors = []


class PoolBackend:
    """An embedder backend whose texts are embedded by the model actors, split evenly between them (in order).
    Pickled, it is the backend it wraps: a worker embeds with its own model."""

    def __init__(self, inner: Embedder, actors: ModelActors):
        self.inner = inner
        self.model_id = inner.model_id
        self.actors = actors
        self.sent: list[dict[str, Any]] = []
        """Per-endpoint usage of each actor's share (an API embedder's), for the stage's manifest."""

    def __reduce__(self) -> tuple[Any, ...]:
        return _same, (self.inner,)

    def embed(self, texts: list[str]) -> np.ndarray:
        actors = self.actors.started()
        step = -(-len(texts) // len(actors))
        slices = [texts[i : i + step] for i in range(0, len(texts), step)]
        answers = ray.get([a.embed.remote(s) for a, s in zip(actors, slices, strict=False)])
        self.sent += [usage for _, usage in answers]
        return np.concatenate([vectors for vectors, _ in answers])


def _same(value: Any) -> Any:
    return value


def step_resources(memory: int, gpu: bool, cluster_gpus: int) -> dict[str, Any]:
    """Ray resources of a placed step: its memory, one GPU when it can use one and the cluster has any, and no CPU
    slot (the model actors may hold every one while the stage prepares; the driver reserves none either)."""
    return {"memory": memory, "num_cpus": 0, "num_gpus": 1 if gpu and cluster_gpus > 0 else 0}


def _placed(mounts: list[storage.Mount], fn: Any, *args: Any) -> Any:
    storage.install(mounts)
    return fn(*args)


@contextlib.contextmanager
def spread_embedding(work: PartWork, actors: ModelActors | None) -> Iterator[list[dict[str, Any]]]:
    """While the stage prepares, its corpus is embedded by the model actors (the driver loads no model). Yields the
    list that receives the actors' per-endpoint usage."""
    embedder = work.prepare_embedder()
    if embedder is None or actors is None:
        yield []
        return
    own = embedder.backend
    pool = embedder.backend = PoolBackend(own, actors)
    try:
        yield pool.sent
    finally:
        embedder.backend = own


class RayExecutor(Executor):
    """Parts as Ray tasks, at most `max_in_flight` at once; a stage that holds a model runs on a pool of actors."""

    def __init__(self, settings: ExecutorSettings):
        self.settings = settings

    def map_parts(self, work: PartWork, todo: Iterator[PartPlan], out: Path) -> Iterator[tuple[PartPlan, dict]]:
        actors = ModelActors(work, self.settings) if work.holds_model else None
        try:
            with spread_embedding(work, actors) as corpus_usage, \
                    placing(lambda *step: self.place(*step, actors=actors)):
                first = next(todo, None)  # the driver prepares the stage while planning its first part
            if first is None:
                return
            ship_seed(out)  # a local run's answers, for every task to read
            connect(self.settings.address)
            sweep_journals(out)  # what workers killed in an earlier run of the stage left
            budgets = ray_budget.start_registry()
            shared = ray.put(work)
            bound = self.settings.max_in_flight or max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
            if actors is not None:
                parts = self._on_actors(actors.prepared(shared), chain([first], todo), out, budgets, bound)
                done, entry = next(parts)  # the corpus's embedding requests are counted with the first part's
                yield done, {**entry, "endpoints": endpoint_stats.fold([entry["endpoints"], *corpus_usage])}
                yield from parts
            else:
                yield from self._on_tasks(shared, chain([first], todo), out, budgets, bound)
            sweep_journals(out)  # the stage succeeded: copies of parts whose workers were lost are not needed
        finally:
            if actors is not None:
                actors.close()

    def _on_tasks(self, shared: Any, todo: Iterator[PartPlan], out: Path, budgets: Any,
                  bound: int) -> Iterator[tuple[PartPlan, dict]]:
        """Parts as tasks, at most `bound` in flight."""
        pending: deque[tuple[PartPlan, ray.ObjectRef]] = deque()
        for plan in todo:
            pending.append((plan, _part_task.remote(shared, plan, out, self.settings, budgets, storage.mounts())))
            while len(pending) >= bound:
                done, ref = pending.popleft()
                yield done, ray.get(ref)
        while pending:
            done, ref = pending.popleft()
            yield done, ray.get(ref)

    def place(self, fn: Any, args: tuple[Any, ...], memory: int, gpu: bool = False,
              actors: ModelActors | None = None) -> Any:
        """A step of `prepare` as a task on a node with `memory` bytes free (Ray's `memory` resource), and a GPU when
        it can use one and the cluster has any (the model actors that embedded the corpus give theirs back first:
        they are replaced once the stage is prepared); a one-line error when no node has that much memory, rather
        than a task that waits for ever."""
        connect(self.settings.address)
        largest = max((node["Resources"].get("memory", 0) for node in ray.nodes() if node["Alive"]), default=0)
        if memory > largest:
            raise ConfigError(f"a step of prepare needs {memory / 2**30:.1f} GiB of memory, more than any node of "
                              f"the cluster has ({largest / 2**30:.1f} GiB)")
        resources = step_resources(memory, gpu, int(ray.cluster_resources().get("GPU", 0)))
        if resources["num_gpus"] and actors is not None:
            actors.close()
        return ray.get(ray.remote(_placed).options(**resources, max_retries=TASK_RETRIES)
                       .remote(storage.mounts(), fn, *args))

    def _on_actors(self, actors: list[Any], todo: Iterator[PartPlan], out: Path, budgets: Any,
                   bound: int) -> Iterator[tuple[PartPlan, dict]]:
        """Parts on the actors that keep the model loaded, at most two in flight per actor."""
        pool = ActorPool(actors)
        submitted: deque[PartPlan] = deque()
        for plan in todo:
            pool.submit(lambda a, p: a.run.remote(p, out, self.settings, budgets, storage.mounts()), plan)
            submitted.append(plan)
            while len(submitted) >= min(bound, 2 * len(actors)):
                yield submitted.popleft(), pool.get_next()
        while submitted:
            yield submitted.popleft(), pool.get_next()
