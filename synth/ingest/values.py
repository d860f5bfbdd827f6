"""Checks that turn one input value into a typed value of the unified schema, or reject it: never coerce."""

from __future__ import annotations

import math
import re
from typing import Any

MISSING = object()
"""A mapped column absent from a row (as opposed to present and null)."""

BINARY_LABELS = {"1": 1.0, "0": 0.0, "true": 1.0, "false": 0.0, "yes": 1.0, "no": 0.0}
NLI_SCORES = {"entailment": 1.0, "neutral": 0.5, "contradiction": 0.0}
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def lookup(row: dict[str, Any], column: str) -> Any:
    """A column's value; a dotted path reaches into nested objects and lists (`answers.text.0` in SQuAD)."""
    if column in row or "." not in column:
        return row.get(column, MISSING)
    value: Any = row
    for key in column.split("."):
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            return MISSING
    return value


def top_column(column: str, columns: set[str]) -> str:
    """The input column a mapped column reads: itself, or the first step of a dotted path."""
    return column if column in columns or "." not in column else column.split(".")[0]


class Rejected(Exception):
    """A row that cannot become a record; `rule` is short and machine-readable, the message says why."""

    def __init__(self, rule: str, reason: str):
        super().__init__(reason)
        self.rule = rule
        self.reason = reason


def _describe(value: Any) -> str:
    shown = repr(value)
    return f"{type(value).__name__} {shown[:60]}{'...' if len(shown) > 60 else ''}"


def present(field: str, value: Any) -> Any:
    """The value itself, unless the column is missing from the row or null."""
    if value is MISSING:
        raise Rejected("missing_field", f"{field}: column missing from the row")
    if value is None:
        raise Rejected("null_field", f"{field}: null")
    return value


def text(field: str, value: Any) -> str:
    """A non-empty string, as given (no stripping, no conversion from numbers)."""
    value = present(field, value)
    if not isinstance(value, str):
        raise Rejected("wrong_type", f"{field}: expected text, got {_describe(value)}")
    if not value.strip():
        raise Rejected("empty_field", f"{field}: empty text")
    return value


def mapped_label(value: Any, label_map: dict[str, str]) -> Any:
    """A label after the user's `--label-map RAW=LABEL` (keys compare with the text of a string or an integer)."""
    if label_map and isinstance(value, str | int) and not isinstance(value, bool):
        return label_map.get(str(value), value)
    return value


def raw_label(value: Any) -> str:
    """The label as the file gave it, as text for the `label` column."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def binary_score(field: str, value: Any) -> float:
    """0/1, true/false or yes/no as a string, an integer or a boolean -> 0.0 or 1.0."""
    value = present(field, value)
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int) and value in (0, 1):
        return float(value)
    if isinstance(value, str) and value.strip().lower() in BINARY_LABELS:
        return BINARY_LABELS[value.strip().lower()]
    raise Rejected("unknown_label", f"{field}: expected 0/1, true/false or yes/no, got {_describe(value)}")


def nli_score(field: str, value: Any) -> float:
    """entailment / neutral / contradiction (any case) -> 1.0 / 0.5 / 0.0."""
    value = present(field, value)
    if isinstance(value, str) and value.strip().lower() in NLI_SCORES:
        return NLI_SCORES[value.strip().lower()]
    hint = " (map integer labels with --label-map 0=entailment ...)" if isinstance(value, int) else ""
    raise Rejected(
        "unknown_label", f"{field}: expected entailment, neutral or contradiction, got {_describe(value)}{hint}"
    )


def number(field: str, value: Any) -> float:
    """A finite number given as a number or as decimal text (CSV and TSV carry only text); booleans are not numbers."""
    value = present(field, value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        result = float(value)
    elif isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        result = float(value.strip())
    else:
        raise Rejected("wrong_type", f"{field}: expected a number, got {_describe(value)}")
    if not math.isfinite(result):
        raise Rejected("wrong_type", f"{field}: expected a finite number, got {value!r}")
    return result


def scaled_score(field: str, value: Any, low: float, high: float) -> float:
    """A score in the declared range [low, high], scaled to [0, 1]; outside the range is a reject."""
    result = number(field, value)
    if not low <= result <= high:
        raise Rejected("out_of_range", f"{field}: {result:g} is outside the declared range [{low:g}, {high:g}]")
    return (result - low) / (high - low)


def class_label(field: str, value: Any) -> str:
    """A class label: non-empty text or an integer (kept as its decimal text)."""
    value = present(field, value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, str):
        raise Rejected("empty_field", f"{field}: empty label")
    raise Rejected("wrong_type", f"{field}: expected text or an integer class, got {_describe(value)}")
