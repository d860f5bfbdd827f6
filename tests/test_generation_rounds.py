"""The regenerate-until-enough loop with a scripted sender: what is kept, rejected, retried and failed."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel

from synth.llm import ChatResult
from synth.synthesis.checks import Failure
from synth.synthesis.generation import Job, run_jobs


class Answer(BaseModel):
    text: str


class Template:
    name = "fake"

    def render(self, **context: Any) -> str:
        return f"{context['source']} (want {context['num']})"


def job(index: int, wanted: int = 1) -> Job:
    return Job(index, Template(), {"source": f"s{index}"}, Answer, wanted=wanted)  # type: ignore[arg-type]


def scripted(answers: dict[int, list[ChatResult]]):
    """A sender answering each job's tries from a script, recording the prompts it was given."""
    prompts: list[str] = []

    async def ask(job: Job, text: str) -> ChatResult:
        prompts.append(text)
        return answers[job.index][job.tries]

    return ask, prompts


def run_rounds(jobs: list[Job], ask: Any, items_of: Any, check: Any, max_tries: int, width: int = 64) -> Any:
    return asyncio.run(run_jobs(jobs, ask, items_of, check, max_tries, width))


def ok(text: str) -> ChatResult:
    return ChatResult(True, text, Answer(text=text))


def no_short(job: Job, item: Answer) -> Failure | None:
    return Failure("too_short", f"{item.text!r}") if len(item.text) < 3 else None


def test_a_cut_answer_is_a_rejected_output_and_the_job_tries_again():
    cut = ChatResult(False, '{"text": "long long', error="answer cut at max_tokens (finish_reason=length)",
                     finish_reason="length")
    send, prompts = scripted({0: [cut, ok("fine")]})
    jobs = [job(0)]
    rejected, stats = run_rounds(jobs, send, lambda j, parsed: [parsed], no_short, max_tries=3)
    assert [r.failure.rule for r in rejected] == ["answer_cut"]
    assert [a.text for a in jobs[0].kept] == ["fine"] and jobs[0].tries == 2
    assert stats.as_dict() == {"generated": 1, "kept": 1, "tries_exhausted": 0, "records_failed": 0}
    assert prompts == ["s0 (want 1)", "s0 (want 1)"]


def test_checks_reject_items_and_jobs_stop_at_max_tries_or_when_a_request_fails():
    no_answer = ChatResult(False, None, error="gave up after 6 attempts: HTTP 500")
    send, _ = scripted({0: [ok("ab"), ok("ab"), ok("ab")], 1: [no_answer], 2: [ok("good")]})
    jobs = [job(0), job(1), job(2)]
    rejected, stats = run_rounds(jobs, send, lambda j, parsed: [parsed], no_short, max_tries=2)
    assert [(r.job.index, r.failure.rule) for r in rejected] == [(0, "too_short"), (0, "too_short")]
    assert jobs[0].tries == 2 and not jobs[0].kept  # out of tries
    assert jobs[1].failed and jobs[1].tries == 1  # no answer: the row failed, asked again next run
    assert [a.text for a in jobs[2].kept] == ["good"]
    assert stats.as_dict() == {"generated": 3, "kept": 1, "tries_exhausted": 1, "records_failed": 1}


def test_a_surplus_of_outputs_is_not_counted():
    class Many(BaseModel):
        items: list[Answer]

    async def send(job: Job, text: str) -> ChatResult:
        return ChatResult(True, "x", Many(items=[Answer(text=t) for t in ("one", "two", "three")]))

    jobs = [job(0, wanted=2)]
    _, stats = run_rounds(jobs, send, lambda j, parsed: parsed.items, no_short, max_tries=1)
    assert [a.text for a in jobs[0].kept] == ["one", "two"] and stats.generated == 2


def test_each_job_asks_again_as_soon_as_its_answer_fails_without_waiting_for_slow_jobs():
    """No round barrier: job 0's three tries all happen while job 1's single slow answer is outstanding, and the
    rejects come back by job then try, whatever order the answers arrived in."""
    order: list[tuple[int, int]] = []

    async def ask(job: Job, text: str) -> ChatResult:
        order.append((job.index, job.tries))
        if job.index == 1:
            await asyncio.sleep(0.2)
            return ok("slow but good")
        await asyncio.sleep(0.01)
        return ok("ab") if job.tries < 2 else ok("fine")

    jobs = [job(0), job(1)]
    rejected, stats = run_rounds(jobs, ask, lambda j, parsed: [parsed], no_short, max_tries=5)
    assert order == [(0, 0), (1, 0), (0, 1), (0, 2)]
    assert [(r.job.index, r.item.text) for r in rejected] == [(0, "ab"), (0, "ab")]
    assert stats.kept == 2 and jobs[0].tries == 3 and jobs[1].tries == 1


def test_at_most_width_jobs_run_at_once_and_every_job_ends_the_same_as_all_at_once():
    """Jobs start as workers free up (a prompt is rendered when its request is near), with the same outcome."""
    running, peak = 0, 0

    async def ask(job: Job, text: str) -> ChatResult:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001 * (job.index % 5))  # uneven latency: jobs finish out of order
        running -= 1
        return ok("good" if job.tries or job.index % 3 else "no")

    def outcome(width: int) -> tuple[Any, ...]:
        jobs = [job(i) for i in range(50)]
        rejected, stats = run_rounds(jobs, ask, lambda j, parsed: [parsed], no_short, max_tries=2, width=width)
        return [(r.job.index, r.item.text) for r in rejected], stats.as_dict(), [j.kept for j in jobs]

    narrow = outcome(4)
    assert peak == 4
    assert narrow == outcome(50) and narrow[1]["kept"] == 50 and len(narrow[0]) == 17


def test_an_awaited_check_keeps_and_rejects_what_the_same_check_does_at_once():
    """A check that waits (augment's embedding band) while other jobs' answers are checked: each job still checks
    its outputs one after another, so kept outputs, near-duplicates and rejects are those of the synchronous check."""

    def answers() -> dict[int, list[ChatResult]]:
        texts = ["ab", "good", "good", "fine", "x", "best"]  # a short one, a duplicate of a kept one, ...
        return {i: [ok(texts[(i + t) % len(texts)]) for t in range(3)] for i in range(8)}

    def no_short_or_repeat(job: Job, item: Answer) -> Failure | None:
        if item.text in [k.text for k in job.kept]:
            return Failure("near_duplicate_output", item.text)
        return no_short(job, item)

    async def waiting(job: Job, item: Answer) -> Failure | None:
        await asyncio.sleep(0.001 * ((job.index * 7 + len(job.seen)) % 5))  # later jobs may finish first
        return no_short_or_repeat(job, item)

    outcomes = []
    for check in (no_short_or_repeat, waiting):
        send, _ = scripted(answers())
        jobs = [job(i, wanted=2) for i in range(8)]
        rejected, stats = run_rounds(jobs, send, lambda j, parsed: [parsed], check, max_tries=3)
        outcomes.append(([[a.text for a in j.kept] for j in jobs],
                         [(r.job.index, r.item.text, r.failure) for r in rejected], stats.as_dict()))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][1] and any(kept for kept in outcomes[0][0])
