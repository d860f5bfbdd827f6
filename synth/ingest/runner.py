"""Run an ingest: check every input first, then turn fixed row ranges of each file into parts, skipping finished ones.

Part N covers a fixed range of input rows; its fingerprint is the hash of those input bytes (plus the file's source
name), and the config hash covers every option, so a rerun redoes exactly the parts whose input or config changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn, TransferSpeedColumn

from synth.errors import InputFileError
from synth.ingest.classes import ClassPool
from synth.ingest.options import IngestOptions
from synth.ingest.readers import EXTENSIONS, Chunk, columns, detect_format, read_chunks
from synth.ingest.records import STAGE, RecordMaker
from synth.ingest.values import Rejected
from synth.schema import Task
from synth.stage import StageSummary, count_rejects, remove_stale_parts
from synth.store import REJECTS, Manifest, part_name, write_part, write_rejects

console = Console(stderr=True)


@dataclass(frozen=True)
class InputFile:
    path: Path
    fmt: str
    source: str


def plan_inputs(opts: IngestOptions) -> list[InputFile]:
    """Every input checked before anything is written: it exists, its format is known, the needed columns are there."""
    planned = []
    for path in opts.inputs:
        fmt = detect_format(path, opts.fmt)
        found = columns(path, fmt)
        needed = [opts.columns[name] for name in opts.shape.fields]
        missing = [column for column in needed if column not in found]
        # A JSONL file without one readable object has no columns to check: each of its lines becomes a reject.
        if missing and (found or fmt != "jsonl"):
            have = ", ".join(sorted(found)) or "none"
            raise InputFileError(
                f"{path}: column {missing[0]!r} not found (shape {opts.shape.name} needs "
                f"{', '.join(needed)}; map one with --map FIELD=COLUMN); columns: {have}"
            )
        planned.append(InputFile(path, fmt, opts.source or _stem(path)))
    return planned


def _stem(path: Path) -> str:
    """The file name without its format extension and `.gz`: `wiki.v2.jsonl.gz` -> `wiki.v2`."""
    name = path.name.removesuffix(".gz").removesuffix(".GZ")
    suffix = Path(name).suffix
    return name.removesuffix(suffix) if suffix.lower() in EXTENSIONS else name


def _chunks(opts: IngestOptions, files: list[InputFile]) -> Iterator[tuple[InputFile, int, Chunk]]:
    """Chunks of every file in order, with the bytes of the files before it (for progress)."""
    offset = 0
    for item in files:
        for chunk in read_chunks(item.path, item.fmt, rows=opts.part_rows, max_record_bytes=opts.max_record_bytes):
            yield item, offset, chunk
        offset += item.path.stat().st_size


def build_class_pool(opts: IngestOptions, files: list[InputFile]) -> ClassPool:
    """First pass for CLS: a bounded, seeded sample of the valid texts of every class."""
    pool = ClassPool(opts.class_pool, opts.seed)
    for item, _offset, chunk in _chunks(opts, files):
        maker = RecordMaker(opts, item.source)
        for row in chunk.load():
            if row.ok:
                with contextlib.suppress(Rejected):  # the second pass rejects this row with its reason
                    for body in maker.bodies(row)[1]:
                        pool.add(body["label"], body["text"])
    return pool


def _process(maker: RecordMaker, chunk: Chunk) -> tuple[list[dict[str, Any]], list[dict[str, str]], int]:
    rows: list[dict[str, Any]] = []
    rejects: list[dict[str, str]] = []
    loaded = chunk.load()
    for source_row in loaded:
        records, rejected = maker.make(source_row)
        rows += records
        if rejected is not None:
            rejects.append(rejected)
    return rows, rejects, len(loaded)


def _write(opts: IngestOptions, task: Task, name: str, rows: list[dict[str, Any]], rejects: list[dict[str, str]]):
    files = [write_part(opts.out, task, name, rows)]
    rejects_file = write_rejects(opts.out, task, name, rejects)
    if rejects_file:
        files.append(rejects_file)
    else:  # a rejects file left by an interrupted earlier run of this part would be stale
        (opts.out / REJECTS / task.value / f"{name}.parquet").unlink(missing_ok=True)
    return files


def run_ingest(opts: IngestOptions, *, quiet: bool = False) -> StageSummary:
    """The whole ingest; returns the summary (counts over all parts, finished now or before)."""
    files = plan_inputs(opts)
    config = opts.config()
    pool = None
    if opts.shape.task is Task.CLS:
        pool = build_class_pool(opts, files)
        config["class_pool_digest"] = pool.digest()
    opts.out.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(opts.out, STAGE)
    cfg_hash = manifest.set_config(config)
    task = opts.shape.task
    summary = StageSummary(STAGE, opts.out)
    seen: set[str] = set()
    total_bytes = sum(item.path.stat().st_size for item in files)
    columns_shown = (
        TextColumn("[bold]ingest"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns_shown, console=console, disable=quiet) as progress:
        bar = progress.add_task("ingest", total=total_bytes)
        makers = {item.path: RecordMaker(opts, item.source, pool) for item in files}
        for index, (item, offset, chunk) in enumerate(_chunks(opts, files)):
            name = part_name(index)
            key = f"{task.value}/{name}"
            seen.add(key)
            fingerprint = hashlib.sha256(f"{item.source}\x00{chunk.digest}".encode()).hexdigest()
            if manifest.is_done(key, fingerprint, cfg_hash):
                summary.skipped += 1
            else:
                started = time.monotonic()
                rows, rejects, rows_in = _process(makers[item.path], chunk)
                manifest.record(
                    key,
                    {
                        "input": f"{item.path.name} {chunk.span}",
                        "fingerprint": fingerprint,
                        "config_hash": cfg_hash,
                        "files": _write(opts, task, name, rows, rejects),
                        "rows_in": rows_in,
                        "rows_out": len(rows),
                        "rows_rejected": len(rejects),
                        "rejects_by_rule": count_rejects(rejects),
                        "seconds": round(time.monotonic() - started, 3),
                    },
                )
                summary.processed += 1
            progress.update(bar, completed=offset + chunk.position)
    remove_stale_parts(opts.out, manifest, seen)
    if summary.skipped and not quiet:
        console.print(f"[{STAGE}] {summary.skipped} of {len(seen)} parts already finished: skipped")
    totals = manifest.totals()
    manifest.set("totals", totals)
    summary.rows_in, summary.rows_out = totals["rows_in"], totals["rows_out"]
    summary.rejected, summary.rejects_by_rule = totals["rows_rejected"], totals["rejects_by_rule"]
    return summary
