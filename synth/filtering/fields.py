"""Which text fields each task type has, for length, language and duplicate checks."""

from __future__ import annotations

from synth.schema import Task

MAIN_TEXTS: dict[Task, tuple[str, ...]] = {
    Task.RETRIEVAL: ("query", "positive"),
    Task.STS: ("text_a", "text_b"),
    Task.CLS: ("text",),
}
"""The fields a record cannot live without; a failing one drops the whole record."""

QUERY_FIELDS = frozenset({"query"})
"""Fields bounded by the query length; every other text is bounded by the passage length."""

DEDUP_KEYS: dict[Task, dict[str, tuple[str, ...]]] = {
    Task.RETRIEVAL: {"query": ("query",), "pair": ("query", "positive")},
    Task.STS: {"pair": ("text_a", "text_b")},
    Task.CLS: {"query": ("text",), "pair": ("text", "label")},
}
"""What `dedup_on = ["query", "pair"]` compares per task; STS sentences recur with many partners, so pairs only."""
