"""What is in a stage output directory: schema, counts per task / origin / source / lang, samples, rejects per rule.

Reads Parquet metadata and a few columns part by part, so it stays cheap on large outputs.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from synth.errors import InputFileError
from synth.schema import COUNTED_COLUMNS
from synth.store import REJECTS, PartRef, list_parts, read_manifest


def _count_column(path: Path, column: str, counts: Counter[str]) -> None:
    if column in pq.read_schema(path).names:
        table = pq.read_table(path, columns=[column])
        for item in pc.value_counts(table[column]).to_pylist():
            counts[str(item["values"])] += item["counts"]


def _samples(parts: list[PartRef], wanted: int) -> list[dict[str, Any]]:
    """The first `wanted` rows, reading only as many row batches as that takes."""
    rows: list[dict[str, Any]] = []
    for part in parts:
        for batch in pq.ParquetFile(part.path).iter_batches(batch_size=max(wanted, 1)):
            rows += batch.slice(0, wanted - len(rows)).to_pylist()
            break
        if len(rows) >= wanted:
            break
    return rows


def _rejects(directory: Path, examples: int) -> dict[str, Any]:
    by_rule: Counter[str] = Counter()
    shown: dict[str, list[dict[str, str]]] = {}
    root = directory / REJECTS
    for path in sorted(root.rglob("*.parquet")) if root.is_dir() else []:
        table = pq.read_table(path, columns=["rule", "location", "reason"])
        for row in table.to_pylist():
            by_rule[row["rule"]] += 1
            if len(shown.setdefault(row["rule"], [])) < examples:
                shown[row["rule"]].append({"location": row["location"], "reason": row["reason"]})
    return {"total": sum(by_rule.values()), "by_rule": dict(by_rule.most_common()), "examples": shown}


def inspect_dir(directory: Path, samples: int = 3) -> dict[str, Any]:
    """A JSON-ready report of one stage output directory."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputFileError(f"not a directory: {directory}")
    parts = list_parts(directory)
    manifest = read_manifest(directory) or {}
    tasks: dict[str, Any] = {}
    for task in sorted({part.task.value for part in parts}):
        task_parts = [part for part in parts if part.task.value == task]
        counts: dict[str, Counter[str]] = {column: Counter() for column in COUNTED_COLUMNS}
        for part in task_parts:
            for column in COUNTED_COLUMNS:
                _count_column(part.path, column, counts[column])
        schema = pq.read_schema(task_parts[0].path)
        tasks[task] = {
            "parts": len(task_parts),
            "rows": sum(pq.ParquetFile(part.path).metadata.num_rows for part in task_parts),
            "schema": {field.name: str(field.type) for field in schema},
            **{column: dict(counts[column].most_common()) for column in COUNTED_COLUMNS},
            "samples": _samples(task_parts, samples),
        }
    return {
        "directory": str(directory),
        "stage": manifest.get("stage"),
        "totals": manifest.get("totals"),
        "tasks": tasks,
        "rejects": _rejects(directory, examples=2),
    }
