"""Input shapes (docs/method.md, section 1) and how each becomes unified records: one small function per shape.

A shape names its fields (which are also its default column names) and turns one row's field values into
task-specific record bodies, or raises `Rejected`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from synth.ingest import chat, documents, values
from synth.ingest.lang import DEFAULT_JOINERS, joiner_for
from synth.schema import Task
from synth.text.chunking import ChunkSettings

Body = dict[str, Any]
"""Task-specific columns of one record, plus an optional `meta` dict merged into the record's meta."""


@dataclass(frozen=True)
class ShapeSettings:
    """The options that change how a row is transformed."""

    score_range: tuple[float, float] | None = None
    both_directions: bool = True
    joiners: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_JOINERS))
    label_map: dict[str, str] = field(default_factory=dict)
    all_chat_turns: bool = False
    chunking: ChunkSettings = field(default_factory=ChunkSettings)
    """documents: how documents are cut into passages."""


@dataclass(frozen=True)
class Shape:
    name: str
    task: Task
    fields: tuple[str, ...]
    build: Callable[[dict[str, Any], str, ShapeSettings], list[Body]]
    """(field values, row language, settings) -> record bodies."""
    lang_field: str
    """The field whose text decides the language when it is guessed."""
    optional: tuple[str, ...] = ()
    """Fields read when their column is there (mappable with `--map` too), None otherwise."""


def _pair(query_field: str, positive_field: str, row: dict[str, Any], lang: str, settings: ShapeSettings) -> list[Body]:
    """Shapes that are a (query, positive) pair of columns; bound with `partial` so shapes stay picklable."""
    query = values.text(query_field, row[query_field])
    return [{"query": query, "positive": values.text(positive_field, row[positive_field])}]


def _reading(row: dict[str, Any], lang: str, settings: ShapeSettings) -> list[Body]:
    context = values.text("context", row["context"])
    question = values.text("question", row["question"])
    answer = values.text("answer", row["answer"])
    return [{"query": context + joiner_for(lang, settings.joiners) + question, "positive": answer}]


def _chat_qa(row: dict[str, Any], lang: str, settings: ShapeSettings) -> list[Body]:
    turns = chat.messages("messages", row["messages"])
    pairs = chat.qa_pairs(turns, settings.all_chat_turns)
    return [
        {"query": q, "positive": a, "meta": {"turn": i}} if i else {"query": q, "positive": a}
        for i, (q, a) in enumerate(pairs)
    ]


def _sts_bodies(text_a: str, text_b: str, score: float, label: str, settings: ShapeSettings) -> list[Body]:
    """The pair, and its reverse when both directions are on (QZhou's default); identical texts give one record."""
    bodies = [{"text_a": text_a, "text_b": text_b, "score": score, "label": label}]
    if settings.both_directions and text_a != text_b:
        bodies.append({"text_a": text_b, "text_b": text_a, "score": score, "label": label, "meta": {"reversed": True}})
    return bodies


def _sts_pair(row: dict[str, Any], first: str, second: str) -> tuple[str, str]:
    return values.text(first, row[first]), values.text(second, row[second])


def _sts_binary(row: dict[str, Any], lang: str, settings: ShapeSettings) -> list[Body]:
    text_a, text_b = _sts_pair(row, "text_a", "text_b")
    label = values.mapped_label(row["label"], settings.label_map)
    return _sts_bodies(text_a, text_b, values.binary_score("label", label), values.raw_label(row["label"]), settings)


def _sts_score(row: dict[str, Any], lang: str, settings: ShapeSettings) -> list[Body]:
    text_a, text_b = _sts_pair(row, "text_a", "text_b")
    low, high = settings.score_range or (0.0, 1.0)
    score = values.scaled_score("score", row["score"], low, high)
    return _sts_bodies(text_a, text_b, score, values.raw_label(row["score"]).strip(), settings)


def _nli(row: dict[str, Any], lang: str, settings: ShapeSettings) -> list[Body]:
    premise, hypothesis = _sts_pair(row, "premise", "hypothesis")
    label = values.mapped_label(row["label"], settings.label_map)
    return _sts_bodies(premise, hypothesis, values.nli_score("label", label), values.raw_label(row["label"]), settings)


def _cls(row: dict[str, Any], lang: str, settings: ShapeSettings) -> list[Body]:
    label = values.mapped_label(row["label"], settings.label_map)
    return [{"text": values.text("text", row["text"]), "label": values.class_label("label", label)}]


def _documents(row: dict[str, Any], lang: str, settings: ShapeSettings) -> list[Body]:
    return documents.passages(row, settings.chunking)


SHAPES: dict[str, Shape] = {
    shape.name: shape
    for shape in (
        Shape("title-body", Task.RETRIEVAL, ("title", "body"), partial(_pair, "title", "body"), "title"),
        Shape("title-abstract", Task.RETRIEVAL, ("title", "abstract"), partial(_pair, "title", "abstract"), "title"),
        Shape("qa", Task.RETRIEVAL, ("question", "answer"), partial(_pair, "question", "answer"), "question"),
        Shape("chat-qa", Task.RETRIEVAL, ("messages",), _chat_qa, "messages"),
        Shape("reading", Task.RETRIEVAL, ("context", "question", "answer"), _reading, "context"),
        Shape("claim-evidence", Task.RETRIEVAL, ("claim", "evidence"), partial(_pair, "claim", "evidence"), "claim"),
        Shape("sts-binary", Task.STS, ("text_a", "text_b", "label"), _sts_binary, "text_a"),
        Shape("sts-score", Task.STS, ("text_a", "text_b", "score"), _sts_score, "text_a"),
        Shape("nli", Task.STS, ("premise", "hypothesis", "label"), _nli, "premise"),
        Shape("cls", Task.CLS, ("text", "label"), _cls, "text"),
        Shape("documents", Task.PASSAGE, documents.DOCUMENT_FIELDS, _documents, "text", documents.OPTIONAL_FIELDS),
    )
}
