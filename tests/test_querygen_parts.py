"""Query generation's pure parts: seeded requirement sampling, the persona pool and its top-k choice."""

from __future__ import annotations

from collections import Counter

import pytest

from synth.errors import ConfigError
from synth.synthesis.personas import Persona, PersonaIndex, default_personas_path, load_personas, match_persona
from synth.synthesis.querygen import QUERYGEN
from synth.synthesis.sampling import RequirementSampler, parse_distribution


def test_distributions_from_strings_and_tables():
    assert parse_distribution("x", "a=2, b") == {"a": 2.0, "b": 1.0}
    assert parse_distribution("x", {"a": 1}) == {"a": 1.0}
    for bad, message in (("a=-1", "must not be negative"), ("a=0", "at least one weight"), ("a=z", "a number"),
                         ({}, "must be a table")):
        with pytest.raises(ConfigError, match=message):
            parse_distribution("x", bad)


def test_sampling_is_reproducible_and_follows_the_weights():
    options = {**QUERYGEN.defaults(), "seed": 3, "question_types": "summary=3,keywords=1", "query_lengths": "7=1",
               "query_languages": "same=1,en=1"}
    sampler = RequirementSampler(options)
    draws = [sampler.draw(f"record-{i}", 0, "zh") for i in range(2000)]
    assert draws == [RequirementSampler(options).draw(f"record-{i}", 0, "zh") for i in range(2000)]
    types = Counter(d.question_type for d in draws)
    assert set(types) == {"summary", "keywords"} and 2.5 < types["summary"] / types["keywords"] < 3.5
    assert {d.length for d in draws} == {7} and {d.lang for d in draws} == {"zh", "en"}
    other_seed = RequirementSampler({**options, "seed": 4})
    assert [other_seed.draw(f"record-{i}", 0, "zh") for i in range(50)] != draws[:50]


def test_shipped_personas_load_and_lexical_top_k_prefers_shared_words():
    personas = load_personas(default_personas_path())
    assert {p.lang for p in personas} == {"en", "zh"} and len(personas) >= 30
    index = PersonaIndex(personas)
    [top] = index.top(["Farmers worry that rain delays the wheat harvest and lowers crop prices."], ["k"], 5)
    assert len(top) == 5 and "farmer" in top[0].text
    [chinese] = index.top(["这只基金的理财收益和股票市场有关。"], ["k"], 5)
    assert "股票" in chinese[0].text


def test_a_model_answer_is_matched_to_an_offered_persona():
    offered = [Persona("1", "A nurse working night shifts", "en"), Persona("2", "A retired historian", "en")]
    assert match_persona("  a NURSE working night   shifts ", offered).id == "1"
    assert match_persona("I choose: A retired historian.", offered).id == "2"
    assert match_persona("retired historian", offered).id == "2"
    assert match_persona("A pilot", offered) is None and match_persona("", offered) is None
