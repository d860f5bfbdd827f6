"""The regenerate-until-enough loop with a fake sender: what is kept, rejected, retried and failed."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from synth.llm import ChatResult
from synth.synthesis.checks import Failure
from synth.synthesis.generation import Job, run_rounds


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

    def send(jobs: list[Job], texts: list[str]) -> list[ChatResult]:
        prompts.extend(texts)
        return [answers[j.index][j.tries] for j in jobs]

    return send, prompts


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

    def send(jobs: list[Job], texts: list[str]) -> list[ChatResult]:
        return [ChatResult(True, "x", Many(items=[Answer(text=t) for t in ("one", "two", "three")])) for _ in jobs]

    jobs = [job(0, wanted=2)]
    _, stats = run_rounds(jobs, send, lambda j, parsed: parsed.items, no_short, max_tries=1)
    assert [a.text for a in jobs[0].kept] == ["one", "two"] and stats.generated == 2
