"""The regenerate-until-enough loop every synthesis stage shares.

Each job wants N accepted outputs for one record. A round renders one request per unfinished job (asking for the
outputs still missing, with earlier outputs listed to avoid), sends the round at once through the engine, checks
every returned item and keeps what passes; jobs short of N go to the next round, up to `max_tries` requests.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from synth.prompts import PromptTemplate
from synth.synthesis.checks import Failure

ItemsOf = Callable[["Job", BaseModel], list[Any]]
"""The outputs inside one parsed answer (`answer.items`, or the answer itself)."""
Check = Callable[["Job", Any], "Failure | None"]
"""Why one output of a job fails, or None; it sees `job.kept`, so it can catch near-duplicates."""

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

    @property
    def open(self) -> bool:
        return self.failed is None and len(self.kept) < self.wanted


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


def run_rounds(
    jobs: list[Job],
    send: Callable[[list[Job], list[str]], list[Any]],
    items_of: ItemsOf,
    check: Check,
    max_tries: int,
) -> tuple[list[RejectedOutput], RoundStats]:
    """Run rounds until every job has its outputs, failed, or used `max_tries` requests.

    `send(jobs, prompts)` returns one engine result per job; `check(job, item)` sees `job.kept` so far, which is
    how near-duplicates among a record's outputs are caught.
    """
    rejected: list[RejectedOutput] = []
    stats = RoundStats()
    while todo := [j for j in jobs if j.open and j.tries < max_tries]:
        prompts = [render_job(job) for job in todo]
        results = send(todo, prompts)
        for job, result in zip(todo, results, strict=True):
            job.tries += 1
            if not result.ok:
                if _is_invalid_answer(result):
                    rule = STOPPED_RULES.get(result.finish_reason or "", "invalid_output")
                    rejected.append(RejectedOutput(job, result.content or "", Failure(rule, result.error)))
                else:
                    job.failed = result.error or "request failed"
                    stats.failed += 1
                continue
            for item in items_of(job, result.parsed):
                if not job.open:
                    break  # the model wrote more than asked: the surplus is not counted
                stats.generated += 1
                job.seen.append(item)
                failure = check(job, item)
                if failure:
                    rejected.append(RejectedOutput(job, item, failure))
                else:
                    job.kept.append(item)
                    stats.kept += 1
    stats.exhausted = sum(1 for j in jobs if j.open)
    return rejected, stats


def _is_invalid_answer(result: Any) -> bool:
    """An answer that came back but did not fit the schema (even when re-asked), or was cut short, is a rejected
    output: the job tries again with another seed, where a rerun would get the same answer again.

    A request that got no answer (transport failure, an empty cut answer) carries no content: the row failed.
    """
    return not result.ok and bool(result.content)
