"""The unified retrieval / STS / CLS schema: pydantic models, matching Arrow schemas and stable ids."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator

from synth.tasks import TASKS, Task  # Task is defined beside the task table; modules import it from here

UNKNOWN_NEGATIVE_ORIGIN = "source"
"""The origin of a negative whose record gives none (`negative_origins` shorter than `negatives`): it came with
the data. Stages write `mined` (mine) and `llm` (llm-negatives, augment)."""

COUNTED_COLUMNS = ("origin", "source", "lang")
"""Shared columns that `synth inspect` and the dataset card count rows by."""

DEFAULT_INSTRUCTIONS: dict[Task, str] = {
    Task.RETRIEVAL: "Given a query, retrieve passages that answer the query",
    Task.STS: "Retrieve semantically similar text",
    Task.CLS: "Classify the given text by its category",
    Task.PASSAGE: "Given a query, retrieve passages that answer the query",
}

# Same output as json.dumps(..., ensure_ascii=False) without building an encoder per call: ingest hashes millions.
_ID_ENCODER = json.JSONEncoder(ensure_ascii=False)
_encode_string = json.encoder.encode_basestring


def record_id(task: Task | str, values: dict[str, Any]) -> str:
    """Stable content hash of a record's defining fields (32 hex chars of SHA-256)."""
    task = Task(task)
    fields = [task.value, *(values[f] for f in TASKS[task].id_fields)]
    if all(type(value) is str for value in fields):  # the common case
        return _text_id(fields)
    return hashlib.sha256(_ID_ENCODER.encode(fields).encode("utf-8")).hexdigest()[:32]


def text_record_ids(task: Task | str, columns: list[list[str]]) -> list[str]:
    """`record_id` of many records at once, given their id fields (all text) as columns in `id_fields` order."""
    name = Task(task).value
    return [_text_id((name, *values)) for values in zip(*columns, strict=True)]


def _text_id(fields: Iterable[str]) -> str:
    """The id of text-only fields, encoded exactly as json.dumps(..., ensure_ascii=False) does."""
    payload = "[" + ", ".join(map(_encode_string, fields)) + "]"
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]


class RecordBase(BaseModel):
    """Columns every task type shares."""

    model_config = ConfigDict(extra="forbid", frozen=False)

    id: str = ""
    task: Task
    instruction: str
    lang: str
    source: str
    origin: Literal["source", "paraphrase", "augment", "querygen"] = "source"
    """`source` from ingest, else the stage that wrote the record; negatives have their own `negative_origins`."""
    parent_id: str | None = None
    document_id: str | None = None
    """The document a record's text comes from (a passage's document, kept by querygen); `synth split` keeps a
    document on one side and `mine` never takes a passage of the query's own document as a negative."""
    meta: str = "{}"

    @field_validator("meta")
    @classmethod
    def _meta_is_json_object(cls, value: str) -> str:
        if not isinstance(json.loads(value), dict):
            raise ValueError("meta must be a JSON object")
        return value

    def model_post_init(self, __context: Any) -> None:
        if not self.id:  # the fields as validated, without the copy a `model_dump` would make of every field
            self.id = record_id(self.task, self.__dict__)


def _nonempty(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


class RetrievalRecord(RecordBase):
    task: Literal[Task.RETRIEVAL] = Task.RETRIEVAL
    query: str
    positive: str
    negatives: list[str] = Field(default_factory=list)
    positive_score: float | None = None
    negative_scores: list[float] | None = None
    negative_origins: list[str] = Field(default_factory=list)
    roundtrip_rank: int | None = None
    """Rank of the positive among the mining corpus for the query (1 = first); set by mine's round-trip rule."""
    positive_teacher_score: float | None = None
    negative_teacher_scores: list[float] | None = None
    """Cross-encoder scores of the positive and of each negative (`mine --rescore-model`): teacher scores for
    distillation; `negative_scores` stay the embedder's."""

    _check_text = field_validator("query", "positive")(_nonempty)


class STSRecord(RecordBase):
    task: Literal[Task.STS] = Task.STS
    text_a: str
    text_b: str
    score: float = Field(ge=0.0, le=1.0)
    label: str | None = None

    _check_text = field_validator("text_a", "text_b")(_nonempty)


class CLSRecord(RecordBase):
    task: Literal[Task.CLS] = Task.CLS
    text: str
    label: str
    positive: str | None = None
    negatives: list[str] = Field(default_factory=list)

    _check_text = field_validator("text", "label")(_nonempty)


class PassageRecord(RecordBase):
    """One passage of a document, cut deterministically: the same document always gives the same passages."""

    task: Literal[Task.PASSAGE] = Task.PASSAGE
    text: str
    document_id: str
    chunk_index: int = Field(ge=0)
    char_start: int = Field(ge=0)
    """Where the passage starts in the document's text (characters); `char_end` is one past its end."""
    char_end: int = Field(ge=0)
    title: str | None = None
    url: str | None = None

    _check_text = field_validator("text", "document_id")(_nonempty)


MODELS: dict[Task, type[RecordBase]] = {
    Task.RETRIEVAL: RetrievalRecord,
    Task.STS: STSRecord,
    Task.CLS: CLSRecord,
    Task.PASSAGE: PassageRecord,
}

_SHARED_FIELDS = [
    pa.field("id", pa.string(), nullable=False),
    pa.field("task", pa.string(), nullable=False),
    pa.field("instruction", pa.string(), nullable=False),
    pa.field("lang", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("origin", pa.string(), nullable=False),
    pa.field("parent_id", pa.string()),
    pa.field("document_id", pa.string()),
    pa.field("meta", pa.string(), nullable=False),
]

ARROW_SCHEMAS: dict[Task, pa.Schema] = {
    Task.RETRIEVAL: pa.schema(
        [
            *_SHARED_FIELDS,
            pa.field("query", pa.string(), nullable=False),
            pa.field("positive", pa.string(), nullable=False),
            pa.field("negatives", pa.list_(pa.string()), nullable=False),
            pa.field("positive_score", pa.float64()),
            pa.field("negative_scores", pa.list_(pa.float64())),
            pa.field("negative_origins", pa.list_(pa.string()), nullable=False),
            pa.field("roundtrip_rank", pa.int64()),
            pa.field("positive_teacher_score", pa.float64()),
            pa.field("negative_teacher_scores", pa.list_(pa.float64())),
        ]
    ),
    Task.STS: pa.schema(
        [
            *_SHARED_FIELDS,
            pa.field("text_a", pa.string(), nullable=False),
            pa.field("text_b", pa.string(), nullable=False),
            pa.field("score", pa.float64(), nullable=False),
            pa.field("label", pa.string()),
        ]
    ),
    Task.CLS: pa.schema(
        [
            *_SHARED_FIELDS,
            pa.field("text", pa.string(), nullable=False),
            pa.field("label", pa.string(), nullable=False),
            pa.field("positive", pa.string()),
            pa.field("negatives", pa.list_(pa.string()), nullable=False),
        ]
    ),
    Task.PASSAGE: pa.schema(
        [
            *_SHARED_FIELDS,
            pa.field("text", pa.string(), nullable=False),
            pa.field("chunk_index", pa.int64(), nullable=False),
            pa.field("char_start", pa.int64(), nullable=False),
            pa.field("char_end", pa.int64(), nullable=False),
            pa.field("title", pa.string()),
            pa.field("url", pa.string()),
        ]
    ),
}

RejectKind = Literal["record", "negative"]
"""What a reject dropped: a whole record (or input row), or one negative of a record that was kept."""

REJECT_SCHEMA = pa.schema(
    [
        pa.field("stage", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),  # a RejectKind; files written before it read as "record"
        pa.field("location", pa.string(), nullable=False),  # built by store.location: "FILE:row 3 id abc..."
        pa.field("rule", pa.string(), nullable=False),  # short machine-readable reason
        pa.field("reason", pa.string(), nullable=False),  # human-readable detail
        pa.field("record", pa.string(), nullable=False),  # the rejected row or record as JSON text
    ]
)


def negative_origins(row: dict[str, Any]) -> list[str]:
    """One origin per negative: the recorded ones, padded with `UNKNOWN_NEGATIVE_ORIGIN` for the rest."""
    origins = list(row.get("negative_origins") or [])
    return origins + [UNKNOWN_NEGATIVE_ORIGIN] * (len(row.get("negatives") or []) - len(origins))


def to_table(task: Task | str, rows: list[dict[str, Any]]) -> pa.Table:
    """Rows (dicts in the unified schema) as an Arrow table with the task's exact schema."""
    schema = ARROW_SCHEMAS[Task(task)]
    return pa.Table.from_pydict({f: [row.get(f) for row in rows] for f in schema.names}, schema=schema)


def validate_row(task: Task | str, row: dict[str, Any]) -> dict[str, Any]:
    """Validate a row against the task's model; returns the normalised dict (id filled in)."""
    return MODELS[Task(task)].model_validate(row).model_dump(mode="json")
