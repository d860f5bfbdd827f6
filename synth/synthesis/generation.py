"""The regenerate-until-enough loop every synthesis stage shares.

Each job wants N accepted outputs for one record. Each job runs its own loop as one coroutine: render a request
(asking for the outputs still missing, with earlier outputs listed to avoid), await the answer, check every item
and keep what passes, and ask again at once while short of N, up to `max_tries` requests. There is no round: a
slow answer holds back only its own job, and every job shares the engine's one limit of requests in flight. A job
sees only its own answers, so the outputs are the same in whatever order the answers arrive.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from synth.llm.concurrency import gather_or_cancel
from synth.prompts import PromptTemplate
from synth.synthesis.checks import Failure
from synth.synthesis.text import Measured

ItemsOf = Callable[["Job", BaseModel], list[Any]]
"""The outputs inside one parsed answer (`answer.items`, or the answer itself)."""
Verdict = Failure | Awaitable[Failure | None] | None
"""Why an output fails, or None; or, from a check that waits on I/O (augment's embedding band), an awaitable of it:
the loop serves the other requests meanwhile, and the job checks its next output only once it is answered, so
`job.kept` is what it would have been."""
Check = Callable[["Job", Any], Verdict]
"""Why one output of a job fails (a `Verdict`); it sees `job.kept`, so it can catch near-duplicates."""

STOPPED_RULES = {"length": "answer_cut", "content_filter": "content_filtered"}
"""The reject rule of an answer the model stopped early, by its finish_reason."""
AVOID_LIMIT = 8
"""Earlier outputs shown to the model on a retry: enough to steer away from them, few enough to keep prompts short."""


@dataclass
class Job:
    """One record's request for `wanted` outputs of one template."""

    index: int
    template: PromptTemplate
    context: dict[str, Any]
    response_model: type[BaseModel]
    wanted: int = 1
    kept: list[Any] = field(default_factory=list)
    seen: list[Any] = field(default_factory=list)
    tries: int = 0
    failed: str | None = None
    measured: dict[str, Any] = field(default_factory=dict)
    """The record's texts its outputs are checked against, each measured once; apart from `context`, which goes to
    the template with every prompt."""
    _kept_measured: list[Measured] = field(default_factory=list, init=False, repr=False)

    @property
    def open(self) -> bool:
        return self.failed is None and len(self.kept) < self.wanted

    def measured_kept(self, text_of: Callable[[Any], str]) -> list[Measured]:
        """The kept outputs as `text_of` writes them, each measured once: every later output of the record is
        compared with all of them (near-duplicates). Kept outputs are only ever appended, so the list follows."""
        kept = self._kept_measured
        kept += [Measured(text_of(item)) for item in self.kept[len(kept):]]
        return kept


@dataclass
class RejectedOutput:
    """An output that failed a check, with the job it belonged to."""

    job: Job
    item: Any
    failure: Failure


@dataclass
class RoundStats:
    """What the loop did with the answers, for the manifest: outputs generated, kept and rejected, jobs that ran
    out of tries or whose request failed. Requests, journal hits and tokens are the engine's to count (`llm_*`)."""

    generated: int = 0
    kept: int = 0
    exhausted: int = 0
    failed: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"generated": self.generated, "kept": self.kept, "tries_exhausted": self.exhausted,
                "records_failed": self.failed}


def as_data(item: Any) -> Any:
    """An output as plain data (JSON-ready), parsed or not."""
    return item.model_dump() if isinstance(item, BaseModel) else item


def render_job(job: Job) -> str:
    """The prompt for the job's next try: how many outputs are still missing and what to avoid."""
    avoid = [json.dumps(as_data(i), ensure_ascii=False) for i in job.seen[-AVOID_LIMIT:]]
    return job.template.render(**job.context, num=job.wanted - len(job.kept), avoid=avoid)


Ask = Callable[["Job", str], Awaitable[Any]]
"""Send a job's next request (its prompt; `job.tries` requests made so far) and return the engine's result."""


async def run_jobs(
    jobs: list[Job], ask: Ask, items_of: ItemsOf, check: Check, max_tries: int, width: int,
    on_done: Callable[[], None] | None = None,
) -> tuple[list[RejectedOutput], RoundStats]:
    """Run every job until it has its outputs, failed, or used `max_tries` requests; `on_done` after each job.

    At most `width` jobs (the engine's concurrency) run at once, each of `width` workers taking the next job when
    its last is done: a job renders its prompt when a request slot is near, so a part's thousands of prompts are not
    all rendered (and held) up front while the first requests wait. Rejected outputs are returned by job, then by
    try, whatever order the answers came in.
    """
    stats = RoundStats()
    rejected: list[list[RejectedOutput]] = [[] for _ in jobs]

    async def run(job: Job, rejects: list[RejectedOutput]) -> None:
        while job.open and job.tries < max_tries:
            result = await ask(job, render_job(job))
            job.tries += 1
            await _take(job, result, items_of, check, rejects, stats)
        if on_done is not None:
            on_done()

    waiting = iter(zip(jobs, rejected, strict=True))

    async def worker() -> None:
        for job, rejects in waiting:  # shared by the workers: each takes the next job
            await run(job, rejects)

    if jobs:
        await gather_or_cancel([asyncio.ensure_future(worker()) for _ in range(min(max(1, width), len(jobs)))])
    stats.exhausted = sum(1 for j in jobs if j.open)
    return [r for rejects in rejected for r in rejects], stats


async def _take(job: Job, result: Any, items_of: ItemsOf, check: Check, rejected: list[RejectedOutput],
                stats: RoundStats) -> None:
    """Check one answer of a job: keep the items that pass, reject the others, or mark the job failed."""
    if not result.ok:
        if _is_invalid_answer(result):
            rule = STOPPED_RULES.get(result.finish_reason or "", "invalid_output")
            rejected.append(RejectedOutput(job, result.content or "", Failure(rule, result.error)))
        else:
            job.failed = result.error or "request failed"
            stats.failed += 1
        return
    for item in items_of(job, result.parsed):
        if not job.open:
            break  # the model wrote more than asked: the surplus is not counted
        stats.generated += 1
        job.seen.append(item)
        failure = check(job, item)
        if hasattr(failure, "__await__"):  # inspect.isawaitable, at a tenth of its cost per output
            failure = await failure
        if failure:
            rejected.append(RejectedOutput(job, item, failure))
        else:
            job.kept.append(item)
            stats.kept += 1


def _is_invalid_answer(result: Any) -> bool:
    """An answer that came back but did not fit the schema (even when re-asked), or was cut short, is a rejected
    output: the job tries again with another seed, where a rerun would get the same answer again.

    A request that got no answer (transport failure, an empty cut answer) carries no content: the row failed.
    """
    return not result.ok and bool(result.content)
