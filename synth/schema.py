"""The unified retrieval / STS / CLS schema: pydantic models, matching Arrow schemas and stable ids."""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator


class Task(StrEnum):
    RETRIEVAL = "retrieval"
    STS = "sts"
    CLS = "cls"


ORIGINS = ("source", "paraphrase", "augment", "querygen", "llm_negative", "mined")
"""Where a record (or a negative) came from; `negative_origins` uses `llm` and `mined` and `source`."""

DEFAULT_INSTRUCTIONS: dict[Task, str] = {
    Task.RETRIEVAL: "Given a query, retrieve passages that answer the query",
    Task.STS: "Retrieve semantically similar text",
    Task.CLS: "Classify the given text by its category",
}

# Fields that define a record's identity, per task: same values -> same id, on any machine.
ID_FIELDS: dict[Task, tuple[str, ...]] = {
    Task.RETRIEVAL: ("query", "positive"),
    Task.STS: ("text_a", "text_b"),
    Task.CLS: ("text", "label"),
}


# Same output as json.dumps(..., ensure_ascii=False) without building an encoder per call: ingest hashes millions.
_ID_ENCODER = json.JSONEncoder(ensure_ascii=False)
_encode_string = json.encoder.encode_basestring


def record_id(task: Task | str, values: dict[str, Any]) -> str:
    """Stable content hash of a record's defining fields (32 hex chars of SHA-256)."""
    task = Task(task)
    fields = [task.value, *(values[f] for f in ID_FIELDS[task])]
    if all(type(value) is str for value in fields):  # the common case, encoded exactly as json.dumps does
        payload = "[" + ", ".join(map(_encode_string, fields)) + "]"
    else:
        payload = _ID_ENCODER.encode(fields)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]


class RecordBase(BaseModel):
    """Columns every task type shares."""

    model_config = ConfigDict(extra="forbid", frozen=False)

    id: str = ""
    task: Task
    instruction: str
    lang: str
    source: str
    origin: Literal["source", "paraphrase", "augment", "querygen", "llm_negative", "mined"] = "source"
    parent_id: str | None = None
    meta: str = "{}"

    @field_validator("meta")
    @classmethod
    def _meta_is_json_object(cls, value: str) -> str:
        if not isinstance(json.loads(value), dict):
            raise ValueError("meta must be a JSON object")
        return value

    def model_post_init(self, __context: Any) -> None:
        if not self.id:
            self.id = record_id(self.task, self.model_dump())


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


MODELS: dict[Task, type[RecordBase]] = {
    Task.RETRIEVAL: RetrievalRecord,
    Task.STS: STSRecord,
    Task.CLS: CLSRecord,
}

_SHARED_FIELDS = [
    pa.field("id", pa.string(), nullable=False),
    pa.field("task", pa.string(), nullable=False),
    pa.field("instruction", pa.string(), nullable=False),
    pa.field("lang", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("origin", pa.string(), nullable=False),
    pa.field("parent_id", pa.string()),
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
}

REJECT_SCHEMA = pa.schema(
    [
        pa.field("stage", pa.string(), nullable=False),
        pa.field("location", pa.string(), nullable=False),  # "file:line 12", "file:row 3" or "id abc..."
        pa.field("rule", pa.string(), nullable=False),  # short machine-readable reason
        pa.field("reason", pa.string(), nullable=False),  # human-readable detail
        pa.field("record", pa.string(), nullable=False),  # the rejected row or record as JSON text
    ]
)


def to_table(task: Task | str, rows: list[dict[str, Any]]) -> pa.Table:
    """Rows (dicts in the unified schema) as an Arrow table with the task's exact schema."""
    schema = ARROW_SCHEMAS[Task(task)]
    return pa.Table.from_pydict({f: [row.get(f) for row in rows] for f in schema.names}, schema=schema)


def validate_row(task: Task | str, row: dict[str, Any]) -> dict[str, Any]:
    """Validate a row against the task's model; returns the normalised dict (id filled in)."""
    return MODELS[Task(task)].model_validate(row).model_dump(mode="json")
