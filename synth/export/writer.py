"""Turn final records into trainer rows, part by part, with counts of what could not be expressed."""

from __future__ import annotations

from typing import Any

import pyarrow.compute as pc

from synth.export.formats import FORMATS, ExportSettings
from synth.schema import Task
from synth.store import PartRef, read_part


def fewest_negatives(parts: list[PartRef], task: Task) -> int:
    """The smallest negative count over a task's records, so a fixed-column export keeps every row by default."""
    counts = [pc.min(pc.list_value_length(read_part(p).column("negatives"))).as_py() for p in parts if p.task == task]
    return min((c for c in counts if c is not None), default=0)


def convert_part(
    records: list[dict[str, Any]], name: str, task: Task, settings: ExportSettings
) -> tuple[list[dict[str, Any]], int]:
    """One part's records as rows of format `name`, and how many records the format could not express."""
    convert = FORMATS[name][task]
    rows = [row for row in (convert(r, settings) for r in records) if row is not None]
    return rows, len(records) - len(rows)
