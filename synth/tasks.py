"""The task types and, per type, one entry with everything the stages need to know about its fields.

A new task type is a `Task` member, one `TASKS` entry here, and its record model and Arrow schema in
`synth/schema.py`. An export format the entry gives no converter for is reported, not a crash.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from synth.export.formats import (
    Converter,
    flag_cls,
    flag_retrieval,
    flag_sts,
    plain,
    st_cls,
    st_retrieval,
    st_sts,
)


class Task(StrEnum):
    RETRIEVAL = "retrieval"
    STS = "sts"
    CLS = "cls"
    PASSAGE = "passage"
    """A passage of a document (ingest's `documents` shape): no query yet; querygen turns it into retrieval."""


@dataclass(frozen=True)
class TaskSpec:
    """One task type's fields by role, and its row converter per export format name."""

    id_fields: tuple[str, ...]
    """The fields that define a record's identity: same values -> same id, on any machine."""
    main_texts: tuple[str, ...]
    """The texts a record cannot live without: one failing a length or language rule drops the whole record."""
    query_texts: frozenset[str]
    """The main texts the filter bounds by the query length; the others are bounded by the passage length."""
    dedup_keys: Mapping[str, tuple[str, ...]]
    """What the filter's `dedup_on = ["query", "pair"]` compares."""
    rewritten_fields: tuple[str, ...]
    """The texts paraphrase rewrites."""
    exports: Mapping[str, Converter]
    """Export format name -> converter; a format missing here does not export this task (and says so)."""
    negatives: bool = False
    """Whether records carry a `negatives` list, which fixed-column export formats size their columns from."""


TASKS: dict[Task, TaskSpec] = {
    Task.RETRIEVAL: TaskSpec(
        id_fields=("query", "positive"),
        main_texts=("query", "positive"),
        query_texts=frozenset({"query"}),
        dedup_keys={"query": ("query",), "pair": ("query", "positive")},
        rewritten_fields=("query", "positive"),
        exports={"sentence-transformers": st_retrieval, "flagembedding": flag_retrieval, "jsonl": plain},
        negatives=True,
    ),
    Task.STS: TaskSpec(
        id_fields=("text_a", "text_b"),
        main_texts=("text_a", "text_b"),
        query_texts=frozenset(),
        dedup_keys={"pair": ("text_a", "text_b")},  # STS sentences recur with many partners, so pairs only
        rewritten_fields=("text_a", "text_b"),
        exports={"sentence-transformers": st_sts, "flagembedding": flag_sts, "jsonl": plain},
    ),
    Task.CLS: TaskSpec(
        id_fields=("text", "label"),
        main_texts=("text",),
        query_texts=frozenset(),
        dedup_keys={"query": ("text",), "pair": ("text", "label")},
        rewritten_fields=("text",),
        exports={"sentence-transformers": st_cls, "flagembedding": flag_cls, "jsonl": plain},
        negatives=True,
    ),
    Task.PASSAGE: TaskSpec(
        id_fields=("document_id", "chunk_index", "text"),
        main_texts=("text",),
        query_texts=frozenset(),
        dedup_keys={"query": ("text",), "pair": ("text",)},
        rewritten_fields=(),
        exports={"jsonl": plain},  # no trainer reads bare passages: they become pairs by querygen, or BEIR corpus
    ),
}
