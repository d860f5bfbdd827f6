"""The engine's small pure parts: token estimates, rate-limit parsing and pacing, structured forms, schema answers."""

from __future__ import annotations

import itertools
import json

import pytest
from openai_server import schema_instance
from pydantic import BaseModel, Field

from synth.llm.ratelimit import PACE_SHARE, Pacer, RateLimiter, parse_duration, retry_after
from synth.llm.structured import FormChooser, InvalidAnswer, extract_json, parse_answer, response_format
from synth.llm.tokens import TokenEstimator, estimate_message_tokens, estimate_text_tokens


class Inner(BaseModel):
    label: str
    score: float = Field(ge=0, le=1)


class Outer(BaseModel):
    items: list[Inner] = Field(min_length=1)
    kind: str | None = None
    count: int = Field(ge=3, le=5)


def test_token_estimates_ascii_cjk_and_messages():
    assert estimate_text_tokens("a" * 400) == 100
    assert estimate_text_tokens("你好世界" * 25) >= 100  # about one token per CJK character
    assert estimate_text_tokens("привет " * 20) > 140 / 4  # other scripts cost more than ASCII per character
    assert estimate_message_tokens([{"role": "user", "content": "a" * 40}]) == 3 + 10 + 4


def test_estimator_learns_from_usage():
    estimator = TokenEstimator()
    assert estimator.scaled(100) == 100
    estimator.observe(300, 600)
    assert estimator.scaled(100) == 200


@pytest.mark.parametrize(("text", "seconds"), [("2", 2.0), ("1.5", 1.5), ("1s", 1.0), ("6m0s", 360.0),
                                               ("20ms", 0.02), ("1h2m", 3720.0), ("soon", None), (None, None)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


def test_retry_after_prefers_milliseconds():
    assert retry_after({"retry-after-ms": "250", "retry-after": "3"}) == 0.25
    assert retry_after({"retry-after": "3"}) == 3.0


def test_pacer_spaces_requests_evenly():
    pacer = Pacer(600 / PACE_SHARE)  # one every 0.1 s
    waits = [pacer.reserve() for _ in range(5)]
    assert waits[0] == pytest.approx(0, abs=0.01)
    assert [round(b - a, 3) for a, b in itertools.pairwise(waits)] == [0.1] * 4
    assert Pacer(None).reserve() == 0.0


def test_limiter_adopts_a_lower_server_limit_and_pauses_when_exhausted():
    limiter = RateLimiter(rpm=6000, tpm=None)
    limiter.follow({"x-ratelimit-limit-requests": "600", "x-ratelimit-remaining-requests": "0",
                    "x-ratelimit-reset-requests": "2s"})
    assert limiter.requests.per_minute == 600 and limiter._paused_until > 0
    assert limiter.on_429({"retry-after": "1"}, fallback_seconds=5) == 1.0


def test_form_chooser_falls_back_on_refusals_but_not_on_one_transient_500():
    chooser = FormChooser("auto")
    assert chooser.current == "json_schema"
    assert not chooser.refused("json_schema", 500)  # first strike: maybe transient, retried as usual
    assert chooser.refused("json_schema", 500) and chooser.current == "json_object_schema"
    assert chooser.refused("json_object_schema", 400) and chooser.current == "json_object"
    assert chooser.accepted("json_object") and chooser.confirmed
    assert not chooser.refused("json_object", 400)  # a confirmed form is never abandoned
    assert FormChooser("auto", remembered="prompt").current == "prompt"
    fixed = FormChooser("json_object_schema")
    assert fixed.confirmed and not fixed.refused("json_object_schema", 500)


def test_response_formats():
    schema = Outer.model_json_schema()
    assert response_format("json_schema", Outer, schema)["json_schema"]["schema"] == schema
    assert response_format("json_object_schema", Outer, schema) == {"type": "json_object", "schema": schema}
    assert response_format("prompt", Outer, schema) is None


def test_answers_are_extracted_and_validated():
    good = json.dumps({"items": [{"label": "a", "score": 0.5}], "count": 4})
    assert extract_json(f"Sure! ```json\n{good}\n``` hope it helps") == good
    assert parse_answer(f"Here: {good}", Outer).count == 4
    with pytest.raises(InvalidAnswer, match="count"):
        parse_answer(json.dumps({"items": [{"label": "a", "score": 0.5}], "count": 9}), Outer)
    with pytest.raises(InvalidAnswer, match="empty"):
        parse_answer("  ", None)


def test_loopback_server_answers_valid_instances_that_differ_by_prompt():
    schema = Outer.model_json_schema()
    first, second = schema_instance(schema, "prompt one"), schema_instance(schema, "prompt two")
    assert Outer.model_validate(first) and Outer.model_validate(second) and first != second
