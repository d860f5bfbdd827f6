"""The filter's rule options, declared once with their validation (every rule setting may vary per task and origin)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from synth.filtering.duplicates import DEDUP_METHODS
from synth.filtering.settings import check_setting, is_off, parse_setting_flags, setting_for
from synth.filtering.thresholds import check_threshold
from synth.mining.options import MINE_DEFAULTS
from synth.registry import Option, defaults_of


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


def rule(key: str, default: Any, help_text: str, check: Callable[[Any], None]) -> Option:
    """A rule option: one value for every record, or a table per task and/or origin (a repeatable flag)."""
    flag = f"--{key.replace('_', '-')}"
    return Option(key, list[str], default, f"{help_text} Repeatable: VALUE, or TASK=, ORIGIN=, TASK.ORIGIN=VALUE.",
                  parse=partial(parse_setting_flags, flag=flag), check=check, panel=PANEL)


PANEL = "Rules"
RULE_OPTIONS: tuple[Option, ...] = (
    rule("min_score", {"source": "off", "default": 0.7}, "Query-positive cosine floor, 0.7 or p20.", check_threshold),
    rule("false_negative_margin", 0.1, "Drop negatives above positive + this.", _number),
    rule("relative_margin", MINE_DEFAULTS["relative_margin"],
         "LLM negatives must score below positive x (1 - this), as in mine.", _margin),
    rule("dedup", "minhash", f"{', '.join(DEDUP_METHODS)}.", _dedup_method),
    rule("dedup_on", ["query", "pair"], "query,pair (what to compare).", _dedup_kinds),
    Option("near_dup_threshold", float, 0.8, "MinHash Jaccard of near duplicates.", check=_fraction, panel=PANEL),
    Option("embedding_dup_threshold", float, 0.95, "Cosine at which texts are near duplicates.", check=_fraction,
           panel=PANEL),
    rule("max_query_tokens", 256, "Longest query, in estimated tokens.", _positive_int),
    rule("max_passage_tokens", 1536, "Longest other text, in estimated tokens.", _positive_int),
    rule("check_lang", True, "true/false: text script must fit `lang`.", _boolean),
    rule("judge", False, "true/false: ask the LLM whether the positive answers.", _boolean),
)
"""Qwen3's 0.7 cosine on synthetic pairs and +0.1 false-negative mask, the miner's relative margin (0: below the
positive) for LLM negatives, QZhou's 256/1536 token bounds."""
RULE_DEFAULTS: dict[str, Any] = defaults_of(RULE_OPTIONS)


def check_rule_options(options: dict[str, Any]) -> dict[str, Any]:
    """Validate every rule setting, naming the option in a one-line error; returns them normalised."""
    kinds = options["dedup_on"]
    options = {**options, "dedup_on": {k: _as_kinds(v) for k, v in kinds.items()} if isinstance(kinds, dict)
               else _as_kinds(kinds)}
    for option in RULE_OPTIONS:
        check_setting(option.key, options[option.key], option.check)
    return options


def rule_used(options: dict[str, Any], name: str, value: Any) -> bool:
    """Whether any per-task/per-origin entry of a setting equals `value` ("off" and false entries never do)."""
    setting = options[name]
    entries = setting.values() if isinstance(setting, dict) else [setting]
    return any(setting_for(entry, "", "") == value for entry in entries)


def judge_used(options: dict[str, Any]) -> bool:
    """Whether the filter will ask the LLM judge about any record: the one answer for the filter and `synth run`."""
    return rule_used(options, "judge", True)
