"""Seeded sampling of the query-generation requirements (question type, difficulty, length, language).

Each draw is seeded by (seed, record id, slot), so a record gets the same requirements whatever part it is in and
however often the run is resumed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from synth.errors import ConfigError

QUESTION_TYPES = ("keywords", "acquire_knowledge", "summary", "yes_or_no", "background")
DIFFICULTIES = ("high_school", "university", "phd")
SAME_LANGUAGE = "same"
LANGUAGE_NAMES = {"en": "English", "zh": "Chinese", "ja": "Japanese", "ko": "Korean", "fr": "French",
                  "de": "German", "es": "Spanish", "ru": "Russian", "ar": "Arabic", "pt": "Portuguese",
                  "it": "Italian"}


def language_name(code: str) -> str:
    """`zh-Hans` -> Chinese; an unknown code is used as its own name."""
    return LANGUAGE_NAMES.get(code.lower().split("-")[0], code)


def parse_distribution(name: str, value: Any, allowed: tuple[str, ...] | None = None) -> dict[str, float]:
    """Weights from a TOML table or a `key=weight,key=weight` string; keys checked, weights positive."""
    if isinstance(value, str):
        pairs = {}
        for item in filter(None, (p.strip() for p in value.split(","))):
            key, sep, weight = item.partition("=")
            pairs[key.strip()] = weight.strip() if sep else "1"
        value = pairs
    if not isinstance(value, dict) or not value:
        raise ConfigError(f"{name} must be a table or KEY=WEIGHT,... string, got {value!r}")
    weights: dict[str, float] = {}
    for key, weight in value.items():
        key = str(key)
        if allowed is not None and key not in allowed:
            raise ConfigError(f"{name}: unknown value {key!r} (known: {', '.join(allowed)})")
        try:
            weights[key] = float(weight)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}: weight of {key!r} must be a number, got {weight!r}") from None
        if weights[key] < 0:
            raise ConfigError(f"{name}: weight of {key!r} must not be negative")
    if sum(weights.values()) <= 0:
        raise ConfigError(f"{name}: at least one weight must be positive")
    return weights


def parse_lengths(value: Any) -> dict[str, float]:
    weights = parse_distribution("query_lengths", value)
    for key in weights:
        if not key.isdigit() or int(key) < 1:
            raise ConfigError(f"query_lengths: {key!r} is not a positive number of words")
    return weights


@dataclass(frozen=True)
class Requirement:
    """What one generated query must be."""

    question_type: str
    difficulty: str
    length: int
    lang: str


class RequirementSampler:
    def __init__(self, options: dict[str, Any]):
        self.seed = options.get("seed") or 0
        self.types = parse_distribution("question_types", options["question_types"], QUESTION_TYPES)
        self.difficulties = parse_distribution("difficulties", options["difficulties"], DIFFICULTIES)
        self.lengths = parse_lengths(options["query_lengths"])
        self.languages = parse_distribution("query_languages", options["query_languages"])

    def config(self) -> dict[str, Any]:
        return {"question_types": self.types, "difficulties": self.difficulties, "query_lengths": self.lengths,
                "query_languages": self.languages, "sample_seed": self.seed}

    def draw(self, record_id: str, slot: int, passage_lang: str) -> Requirement:
        rng = random.Random(f"{self.seed}:{record_id}:{slot}")

        def pick(weights: dict[str, float]) -> str:
            return rng.choices(list(weights), weights=list(weights.values()))[0]

        lang = pick(self.languages)
        return Requirement(pick(self.types), pick(self.difficulties), int(pick(self.lengths)),
                           passage_lang if lang == SAME_LANGUAGE else lang)
