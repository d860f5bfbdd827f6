"""Make one output part from one input chunk: its records and rejects.

A part depends only on its chunk, the options and the CLS class pool, so the executor can make parts in any order
and anywhere (in worker processes with `--workers N`).
"""

from __future__ import annotations

from typing import Any

from synth.executor import PartResult
from synth.ingest.classes import ClassPool
from synth.ingest.options import IngestOptions
from synth.ingest.readers import Chunk
from synth.ingest.records import RecordMaker
from synth.ingest.vectorised import vectorised_part


def make_part(opts: IngestOptions, pool: ClassPool | None, source: str, chunk: Chunk) -> PartResult:
    """The records and rejects of the rows of `chunk`, read from the input file named `source`."""
    if opts.vectorised and (fast := vectorised_part(opts, source, chunk)) is not None:
        return fast
    maker = RecordMaker(opts, source, pool)
    rows: list[dict[str, Any]] = []
    rejects: list[dict[str, str]] = []
    loaded = chunk.load()
    for source_row in loaded:
        records, rejected = maker.make(source_row)
        rows += records
        if rejected is not None:
            rejects.append(rejected)
    return PartResult(rows, rejects, rows_in=len(loaded))
