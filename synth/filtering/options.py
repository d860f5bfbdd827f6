"""The filter's rule options: defaults and validation (every rule setting may vary per task and origin)."""

from __future__ import annotations

from typing import Any

from synth.filtering.duplicates import DEDUP_METHODS
from synth.filtering.settings import check_setting, is_off
from synth.filtering.thresholds import check_threshold

RULE_DEFAULTS: dict[str, Any] = {
    "min_score": {"source": "off", "default": 0.7},
    "false_negative_margin": 0.1,
    "relative_margin": 0.05,
    "dedup": "minhash",
    "dedup_on": ["query", "pair"],
    "near_dup_threshold": 0.8,
    "embedding_dup_threshold": 0.95,
    "max_query_tokens": 256,
    "max_passage_tokens": 1536,
    "check_lang": True,
    "judge": False,
}
"""Qwen3's 0.7 cosine on synthetic pairs and +0.1 false-negative mask, the miner's relative margin (NV-Retriever's
TopK-PercPos, below 95% of the positive) for LLM negatives, QZhou's 256/1536 token bounds."""


def _number(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {value!r}")


def _margin(value: Any) -> None:
    _number(value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"expected a relative margin in [0, 1), got {value!r}")


def _positive_int(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"expected a positive whole number of tokens, got {value!r}")


def _fraction(value: Any) -> None:
    _number(value)
    if not 0.0 < value <= 1.0:
        raise ValueError(f"expected a similarity in (0, 1], got {value!r}")


def _dedup_method(value: Any) -> None:
    if value not in DEDUP_METHODS:
        raise ValueError(f"expected one of {', '.join(DEDUP_METHODS)}, got {value!r}")


def _dedup_kinds(value: Any) -> None:
    if not isinstance(value, list) or not set(value) <= {"query", "pair"}:
        raise ValueError(f"expected a list of query and/or pair, got {value!r}")


def _as_kinds(value: Any) -> Any:
    """`"query,pair"` (as a flag gives it) as `["query", "pair"]`."""
    if isinstance(value, str) and not is_off(value):
        return [kind.strip() for kind in value.split(",") if kind.strip()]
    return value


def _boolean(value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")


CHECKS = {
    "min_score": check_threshold,
    "false_negative_margin": _number,
    "relative_margin": _margin,
    "dedup": _dedup_method,
    "dedup_on": _dedup_kinds,
    "near_dup_threshold": _fraction,
    "embedding_dup_threshold": _fraction,
    "max_query_tokens": _positive_int,
    "max_passage_tokens": _positive_int,
    "check_lang": _boolean,
    "judge": _boolean,
}


def check_rule_options(options: dict[str, Any]) -> dict[str, Any]:
    """Validate every rule setting, naming the option in a one-line error; returns them normalised."""
    kinds = options["dedup_on"]
    options = {**options, "dedup_on": {k: _as_kinds(v) for k, v in kinds.items()} if isinstance(kinds, dict)
               else _as_kinds(kinds)}
    for name, check in CHECKS.items():
        check_setting(name, options[name], check)
    return options
