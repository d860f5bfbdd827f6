"""The JSON answers each prompt asks for, as pydantic models: sent as the response schema, validated on return."""

from __future__ import annotations

import json
from functools import cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

NEGATIVE_KINDS = ("deviates_meaning", "adds_irrelevant", "different_aspect")
"""The three ways an LLM hard negative may be worse than the positive (docs/method.md, section 2)."""


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AugmentItem(_Answer):
    query: str
    positive: str
    negative: str


class AugmentOutput(_Answer):
    items: list[AugmentItem] = Field(min_length=1)


class ClassExample(_Answer):
    text: str


class AugmentClsOutput(_Answer):
    items: list[ClassExample] = Field(min_length=1)


class HardNegative(_Answer):
    kind: Literal["deviates_meaning", "adds_irrelevant", "different_aspect"]
    passage: str


class NegativesOutput(_Answer):
    negatives: list[HardNegative] = Field(min_length=1)


class QueryConfig(_Answer):
    character: str


class GeneratedQuery(_Answer):
    query: str


@cache
def paraphrase_output(fields: tuple[str, ...]) -> type[BaseModel]:
    """`{"items": [{field: text, ...}]}` for the fields a task rewrites (query+positive, text_a+text_b, text)."""
    item = create_model("Paraphrase", __base__=_Answer, **{f: (str, ...) for f in fields})
    return create_model("ParaphraseOutput", __base__=_Answer, items=(list[item], Field(min_length=1)))


@cache
def schema_json(model: type[BaseModel]) -> str:
    """The JSON Schema a template shows the model (`output_schema`); made once per model, not once per record."""
    return json.dumps(model.model_json_schema(), ensure_ascii=False)
