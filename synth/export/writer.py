"""Turn final records into trainer rows: the query format, the negative columns and the per-record conversion."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from synth.embed.instructions import format_query
from synth.export.formats import Converter
from synth.store import PartRef


@dataclass(frozen=True)
class ExportSettings:
    """What shapes the exported rows: negatives per row (fixed-column formats) and the query format."""

    num_negatives: int
    instruction_format: str | None

    def query(self, text: str, instruction: str | None) -> str:
        """The query as the trainer sees it: with its instruction only when a query format is asked for."""
        return format_query(text, instruction, self.instruction_format) if self.instruction_format else text


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


def convert_rows(records: list[dict[str, Any]], convert: Converter, settings: ExportSettings) -> list[dict[str, Any]]:
    """The rows a format writes for these records; a record the format cannot express is left out."""
    return [row for row in (convert(record, settings) for record in records) if row is not None]
