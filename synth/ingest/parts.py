"""Make one output part from one input chunk: records, rejects, the written files and the manifest entry.

The same function runs in the ingest process or in worker processes (`--workers N`): a part depends only on its
chunk, the options and the CLS class pool, so parts can be made in any order and anywhere.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from synth.ingest.classes import ClassPool
from synth.ingest.options import IngestOptions
from synth.ingest.readers import Chunk
from synth.ingest.records import RecordMaker
from synth.stage import count_rejects
from synth.store import REJECTS, write_part, write_rejects

_WORKER: dict[str, Any] = {}
"""Options and class pool of a worker process, set once by `init_worker` (the pool can be large)."""


def _write(out: Path, maker: RecordMaker, name: str, rows: list[dict[str, Any]], rejects: list[dict[str, str]]):
    files = [write_part(out, maker.task, name, rows)]
    rejects_file = write_rejects(out, maker.task, name, rejects)
    if rejects_file:
        files.append(rejects_file)
    else:  # a rejects file left by an interrupted earlier run of this part would be stale
        (out / REJECTS / maker.task.value / f"{name}.parquet").unlink(missing_ok=True)
    return files


def make_part(opts: IngestOptions, pool: ClassPool | None, source: str, name: str, chunk: Chunk) -> dict[str, Any]:
    """Write part `name` (and its rejects) from `chunk`; return its manifest entry without the fingerprint."""
    started = time.monotonic()
    maker = RecordMaker(opts, source, pool)
    rows: list[dict[str, Any]] = []
    rejects: list[dict[str, str]] = []
    loaded = chunk.load()
    for source_row in loaded:
        records, rejected = maker.make(source_row)
        rows += records
        if rejected is not None:
            rejects.append(rejected)
    return {
        "files": _write(opts.out, maker, name, rows, rejects),
        "rows_in": len(loaded),
        "rows_out": len(rows),
        "rows_rejected": len(rejects),
        "rejects_by_rule": count_rejects(rejects),
        "seconds": round(time.monotonic() - started, 3),
    }


def init_worker(opts: IngestOptions, pool: ClassPool | None) -> None:
    _WORKER.update(opts=opts, pool=pool)


def worker_part(source: str, name: str, chunk: Chunk) -> dict[str, Any]:
    """`make_part` in a worker process started with `init_worker`."""
    return make_part(_WORKER["opts"], _WORKER["pool"], source, name, chunk)
