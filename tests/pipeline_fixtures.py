"""Hand-made records and stage directories for the filter, card, export and pipeline tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synth.schema import Task, validate_row
from synth.store import write_part


def retrieval(query: str, positive: str, **fields: Any) -> dict[str, Any]:
    row = {"task": "retrieval", "instruction": "Given a query, retrieve passages that answer the query",
           "lang": "en", "source": "hand", "origin": "source", "query": query, "positive": positive, **fields}
    return validate_row(Task.RETRIEVAL, row)


def sts(text_a: str, text_b: str, score: float, **fields: Any) -> dict[str, Any]:
    row = {"task": "sts", "instruction": "Retrieve semantically similar text", "lang": "en", "source": "hand",
           "origin": "source", "text_a": text_a, "text_b": text_b, "score": score, **fields}
    return validate_row(Task.STS, row)


def cls(text: str, label: str, **fields: Any) -> dict[str, Any]:
    row = {"task": "cls", "instruction": "Classify the given text by its category", "lang": "en", "source": "hand",
           "origin": "source", "text": text, "label": label, **fields}
    return validate_row(Task.CLS, row)


def passage(text: str, document_id: str, chunk_index: int = 0, **fields: Any) -> dict[str, Any]:
    """A passage of a document, as ingest's documents shape writes it (the span is the whole text by default)."""
    row = {"task": "passage", "instruction": "Given a query, retrieve passages that answer the query", "lang": "en",
           "source": "hand", "origin": "source", "text": text, "document_id": document_id, "chunk_index": chunk_index,
           "char_start": 0, "char_end": len(text), **fields}
    return validate_row(Task.PASSAGE, row)


def write_stage(directory: Path, parts: list[list[dict[str, Any]]]) -> Path:
    """A stage directory whose parts hold the given rows (each part one task)."""
    for index, rows in enumerate(parts):
        write_part(directory, rows[0]["task"], f"part-{index:05d}", rows)
    return directory


def querygen_pipeline(tmp_path: Path, server: Any, rows: int, parts: int = 2, rpm: float | None = None,
                      concurrency: int = 4, executor: str = "local") -> Path:
    """`parts` parts of `rows` retrieval rows each in `tmp_path/input`, and a pipeline file with a querygen stage
    over them against `server`, on the `executor` its file names."""
    write_stage(tmp_path / "input", [[retrieval(f"question {p}-{i} about topic {i}?",
                                                f"passage {p}-{i} on topic {i}, long enough to ask.")
                                      for i in range(rows)] for p in range(parts)])
    path = tmp_path / "querygen.toml"
    path.write_text(f"""
name = "qg"
[llm]
base_url = "{server.base_url}"
api_key = "{server.api_key}"
model = "test-model"
concurrency = {concurrency}
timeout = 30.0
{f"rpm = {rpm}" if rpm else ""}
[executor]
kind = "{executor}"
snapshot_seconds = 0.2
[[stage]]
use = "querygen"
inputs = ["{tmp_path / 'input'}"]
num = 1
max_tries = 1
""", encoding="utf-8")
    return path
