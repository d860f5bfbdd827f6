"""The local executor: parts one after another, in threads of this process (parts in flight), or in worker processes."""

from __future__ import annotations

import contextvars
import multiprocessing
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures import Executor as PoolExecutor
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
        if self.workers > 1:
            context = multiprocessing.get_context("spawn")
            pool: PoolExecutor = ProcessPoolExecutor(self.workers, mp_context=context, initializer=_init_worker,
                                                     initargs=(work,))
            yield from _in_order(pool, todo, 2 * self.workers, lambda plan: pool.submit(_worker_part, plan, out))
        elif work.parts_in_flight > 1:
            pool = ThreadPoolExecutor(work.parts_in_flight, thread_name_prefix=f"synth-{work.name}")
            yield from _in_order(pool, todo, work.parts_in_flight,
                                 # each part in the caller's context (batch mode's collector is a context variable)
                                 lambda plan: pool.submit(contextvars.copy_context().run, execute_part, work, plan,
                                                          out))
        else:
            for plan in todo:
                yield plan, execute_part(work, plan, out)


def _in_order(pool: PoolExecutor, todo: Iterator[PartPlan], bound: int,
              submit: Callable[[PartPlan], Future[dict]]) -> Iterator[tuple[PartPlan, dict]]:
    """Submit parts and yield them in plan order. At most `bound` parts run at once, and a part that finished
    while an earlier one still runs frees its place (its result waits, at most `bound` of them): one slow part holds
    back only itself. On an error the parts not started are dropped; worker processes finish theirs, threads are not
    waited for (the stage's `close` stops them)."""
    pending: deque[tuple[PartPlan, Future[dict]]] = deque()
    try:
        for plan in todo:
            pending.append((plan, submit(plan)))
            while True:
                while pending and pending[0][1].done():
                    done, future = pending.popleft()
                    yield done, future.result()
                running = [future for _, future in pending if not future.done()]
                if len(running) < bound and len(pending) < 2 * bound:
                    break
                wait(running, return_when=FIRST_COMPLETED)
        while pending:
            done, future = pending.popleft()
            yield done, future.result()
    except BaseException:
        pool.shutdown(wait=isinstance(pool, ProcessPoolExecutor), cancel_futures=True)
        raise
    pool.shutdown()
