"""Stream a final data directory into trainer files, part by part, with counts of what could not be expressed."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from synth.embed.instructions import format_query
from synth.export.formats import FORMATS
from synth.store import PartRef, atomic_write_bytes, atomic_write_table, list_parts, read_part
from synth.tasks import TASKS


@dataclass(frozen=True)
class ExportSettings:
    """What shapes the exported rows: negatives per row (fixed-column formats) and the query format."""

    num_negatives: int
    instruction_format: str | None

    def query(self, text: str, instruction: str | None) -> str:
        """The query as the trainer sees it: with its instruction only when a query format is asked for."""
        return format_query(text, instruction, self.instruction_format) if self.instruction_format else text


@dataclass
class ExportReport:
    """One format's rows written and skipped per `format/task`, why rows were left out, and the files made."""

    format: str
    written: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    num_negatives: dict[str, int] = field(default_factory=dict)
    """Negative columns per row, for formats with a fixed number of them."""
    too_few_negatives: dict[str, int] = field(default_factory=dict)
    """Rows left out (and counted in `skipped`) because they have fewer negatives than the columns."""
    unsupported: dict[str, int] = field(default_factory=dict)
    """Rows per task type the format has no converter for."""

    def stats(self) -> dict[str, int]:
        """The counts as end-of-stage summary lines."""
        stats = {f"written {k}": v for k, v in self.written.items()}
        stats.update({f"skipped {k}": v for k, v in self.skipped.items() if v})
        stats.update({f"negatives per row {k}": v for k, v in self.num_negatives.items()})
        stats.update({f"skipped {k}: fewer than {self.num_negatives[k]} negatives": v
                      for k, v in self.too_few_negatives.items() if v})
        stats.update({f"format {self.format} does not support task {task}: rows not exported": v
                      for task, v in self.unsupported.items()})
        return stats


def negative_counts(parts: list[PartRef]) -> Counter[int]:
    """How many records have 0, 1, 2, ... negatives, reading only the `negatives` column."""
    counts: Counter[int] = Counter()
    for part in parts:
        lengths = pc.list_value_length(pq.read_table(part.path, columns=["negatives"]).column("negatives"))
        for item in pc.value_counts(lengths).to_pylist():
            if item["values"] is not None:
                counts[item["values"]] += item["counts"]
    return counts


def default_negatives(counts: Counter[int]) -> int:
    """Negative columns by default: the most common count among records that have any (the smaller on a tie).

    That keeps what the pipeline made: the few records with fewer negatives are left out (and counted) instead
    of one record without negatives stripping the negatives of every other row. 0 when no record has any.
    """
    having = [(count, n) for n, count in counts.items() if n > 0]
    return max(having, key=lambda pair: (pair[0], -pair[1]))[1] if having else 0


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
    report = ExportReport(name)
    parts = list_parts(source)
    export = FORMATS[name]
    for task, spec in TASKS.items():
        task_parts = [p for p in parts if p.task == task]
        key = f"{name}/{task.value}"
        for stale in (out / name / task.value).glob(f"train-*.{export.file_type}"):
            stale.unlink()  # a previous export of more parts must not leave extra files behind
        if not task_parts:
            continue
        convert = spec.exports.get(name)
        if convert is None:
            report.unsupported[task.value] = sum(pq.ParquetFile(p.path).metadata.num_rows for p in task_parts)
            continue
        n = 0
        if spec.negatives and export.fixed_negatives:
            counts = negative_counts(task_parts)
            n = num_negatives if num_negatives is not None else default_negatives(counts)
            report.num_negatives[key] = n
            report.too_few_negatives[key] = sum(count for have, count in counts.items() if have < n)
        settings = ExportSettings(n, instruction_format)
        for index, part in enumerate(task_parts):
            records = read_part(part).to_pylist()
            rows = [row for row in (convert(r, settings) for r in records) if row is not None]
            report.skipped[key] = report.skipped.get(key, 0) + len(records) - len(rows)
            if not rows:
                continue
            rel = f"{name}/{task.value}/train-{index:05d}.{export.file_type}"
            write_rows(out / rel, rows, export.file_type)
            report.files.append(rel)
            report.written[key] = report.written.get(key, 0) + len(rows)
    return report
