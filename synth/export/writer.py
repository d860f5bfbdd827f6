"""Stream a final data directory into trainer files, part by part, with counts of what could not be expressed."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from synth.export.formats import FILE_TYPES, FIXED_NEGATIVES, FORMATS, ExportSettings
from synth.schema import Task
from synth.store import PartRef, atomic_write_bytes, atomic_write_table, list_parts, read_part


@dataclass
class ExportReport:
    """Rows written and skipped per (format, task), and the files made."""

    written: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    num_negatives: dict[str, int] = field(default_factory=dict)


def fewest_negatives(parts: list[PartRef], task: Task) -> int:
    """The smallest negative count over a task's records, so a fixed-column export keeps every row by default."""
    counts = [pc.min(pc.list_value_length(read_part(p).column("negatives"))).as_py() for p in parts if p.task == task]
    return min((c for c in counts if c is not None), default=0)


def write_rows(path: Path, rows: list[dict[str, Any]], file_type: str) -> None:
    if file_type == "parquet":
        atomic_write_table(path, pa.Table.from_pylist(rows))
    else:
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        atomic_write_bytes(path, text.encode("utf-8"))


def export_format(
    source: Path, out: Path, name: str, num_negatives: int | None, instruction_format: str | None
) -> ExportReport:
    """Write `OUT/NAME/TASK/train-NNNNN.EXT`, one file per input part; a task without rows gets no files."""
    report = ExportReport()
    parts = list_parts(source)
    file_type = FILE_TYPES[name]
    for task in Task:
        task_parts = [p for p in parts if p.task == task]
        n = 0
        if task != Task.STS and task_parts:  # STS records have no negatives
            n = num_negatives if num_negatives is not None else fewest_negatives(task_parts, task)
            if name in FIXED_NEGATIVES:
                report.num_negatives[task.value] = n
        settings = ExportSettings(n, instruction_format)
        convert = FORMATS[name][task]
        key = f"{name}/{task.value}"
        for stale in (out / name / task.value).glob(f"train-*.{file_type}"):
            stale.unlink()  # a previous export of more parts must not leave extra files behind
        for index, part in enumerate(task_parts):
            records = read_part(part).to_pylist()
            rows = [row for row in (convert(r, settings) for r in records) if row is not None]
            report.skipped[key] = report.skipped.get(key, 0) + len(records) - len(rows)
            if not rows:
                continue
            rel = f"{name}/{task.value}/train-{index:05d}.{file_type}"
            write_rows(out / rel, rows, file_type)
            report.files.append(rel)
            report.written[key] = report.written.get(key, 0) + len(rows)
    return report
