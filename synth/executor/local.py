"""The local executor: parts run one after another in this process, or in a pool of worker processes."""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

from synth.executor.base import Executor, PartPlan, PartWork, execute_part

_WORKER: dict[str, PartWork] = {}
"""The stage of a worker process, set once by `_init_worker` (it can be large: ingest's class pool)."""


def _init_worker(work: PartWork) -> None:
    _WORKER["work"] = work


def _worker_part(plan: PartPlan, out: Path) -> dict:
    return execute_part(_WORKER["work"], plan, out)


class LocalExecutor(Executor):
    """`workers` 1: in this process (stages holding connections, such as the LLM ones, need this). More: spawned
    worker processes (not forked: the progress bar runs a thread), for stages whose state can be pickled."""

    def __init__(self, workers: int = 1):
        self.workers = workers

    def map_parts(self, work: PartWork, todo: Iterator[PartPlan], out: Path) -> Iterator[tuple[PartPlan, dict]]:
        from synth.llm.journal import fold_snapshots  # here: synth.llm imports the stages, which import this

        fold_snapshots(out)  # answers a cluster run bought are read here, not bought again
        if self.workers <= 1:
            for plan in todo:
                yield plan, execute_part(work, plan, out)
            return
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(self.workers, mp_context=context, initializer=_init_worker,
                                 initargs=(work,)) as pool:
            pending: deque[tuple[PartPlan, Future[dict]]] = deque()
            for plan in todo:
                pending.append((plan, pool.submit(_worker_part, plan, out)))
                while len(pending) >= 2 * self.workers:  # bounded: at most two parts in flight per worker
                    done, future = pending.popleft()
                    yield done, future.result()
            while pending:
                done, future = pending.popleft()
                yield done, future.result()
