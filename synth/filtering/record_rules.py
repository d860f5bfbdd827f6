"""Rules that judge one record (or one negative) on its own: length bounds and language agreement.

Lengths use the engine's offline token estimate (about 4 ASCII characters or 1 CJK character per token), so
filtering never downloads a tokenizer.
"""

from __future__ import annotations

from typing import Any

from synth.llm.tokens import estimate_text_tokens
from synth.schema import Task
from synth.tasks import TASKS
from synth.text import lang_mismatch


def too_long(text: str, limit: int | None) -> str | None:
    """Why `text` exceeds `limit` estimated tokens, or None."""
    if limit is None:
        return None
    tokens = estimate_text_tokens(text)
    return f"{tokens} estimated tokens > {limit}" if tokens > limit else None


def length_violation(row: dict[str, Any], max_query: int | None, max_passage: int | None) -> str | None:
    """The first main text field over its bound, as a reason."""
    spec = TASKS[Task(row["task"])]
    for name in spec.main_texts:
        reason = too_long(row[name], max_query if name in spec.query_texts else max_passage)
        if reason:
            return f"{name}: {reason}"
    return None


def language_violation(row: dict[str, Any]) -> str | None:
    """The first main text field whose script disagrees with the record's `lang`, as a reason."""
    for name in TASKS[Task(row["task"])].main_texts:
        reason = lang_mismatch(row[name], row["lang"])
        if reason:
            return f"{name}: {reason}"
    return None
