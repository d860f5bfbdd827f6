"""Run an ingest: check every input first, then turn fixed row ranges of each file into parts, skipping finished ones.

Part N covers a fixed range of input rows; its fingerprint is the hash of those input bytes (plus the file's source
name), and the config hash covers every option, so a rerun redoes exactly the parts whose input or config changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn, TransferSpeedColumn

from synth.errors import InputFileError
from synth.ingest.classes import ClassPool
from synth.ingest.options import IngestOptions
from synth.ingest.parts import init_worker, make_part, worker_part
from synth.ingest.readers import EXTENSIONS, Chunk, columns, detect_format, read_chunks
from synth.ingest.records import STAGE, RecordMaker
from synth.ingest.values import Rejected, top_column
from synth.schema import Task
from synth.stage import StageSummary, remove_stale_parts, say_skipped
from synth.store import Manifest, part_name

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
        missing = [column for column in needed if top_column(column, found) not in found]
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


def _executor(opts: IngestOptions, pool: ClassPool | None) -> ProcessPoolExecutor | None:
    """Worker processes for `--workers N` (spawned, not forked: the progress bar runs a thread)."""
    if opts.workers <= 1:
        return None
    context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(opts.workers, mp_context=context, initializer=init_worker, initargs=(opts, pool))


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
    pending: deque[tuple[str, dict[str, Any], Future[dict[str, Any]]]] = deque()

    def finish(key: str, base: dict[str, Any], entry: dict[str, Any]) -> None:
        manifest.record(key, {**base, **entry})
        summary.processed += 1

    total_bytes = sum(item.path.stat().st_size for item in files)
    shown = (TextColumn("[bold]ingest"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeElapsedColumn())
    executor = _executor(opts, pool)
    with Progress(*shown, console=console, disable=quiet) as progress, executor or contextlib.nullcontext():
        bar = progress.add_task("ingest", total=total_bytes)
        for index, (item, offset, chunk) in enumerate(_chunks(opts, files)):
            name = part_name(index)
            key = f"{task.value}/{name}"
            seen.add(key)
            fingerprint = hashlib.sha256(f"{item.source}\x00{chunk.digest}".encode()).hexdigest()
            base = {"input": f"{item.path.name} {chunk.span}", "fingerprint": fingerprint, "config_hash": cfg_hash}
            if manifest.is_done(key, fingerprint, cfg_hash):
                summary.skipped += 1
            elif executor is None:
                finish(key, base, make_part(opts, pool, item.source, name, chunk))
            else:
                pending.append((key, base, executor.submit(worker_part, item.source, name, chunk)))
                while len(pending) >= 2 * opts.workers:  # bounded: at most two chunks in flight per worker
                    key_done, base_done, future = pending.popleft()
                    finish(key_done, base_done, future.result())
            progress.update(bar, completed=offset + chunk.position)
        while pending:
            key_done, base_done, future = pending.popleft()
            finish(key_done, base_done, future.result())
    remove_stale_parts(opts.out, manifest, seen)
    if not quiet:
        say_skipped(STAGE, summary.skipped, len(seen))
    totals = manifest.totals()
    manifest.set("totals", totals)
    summary.rows_in, summary.rows_out = totals["rows_in"], totals["rows_out"]
    summary.rejected, summary.rejects_by_rule = totals["rows_rejected"], totals["rejects_by_rule"]
    return summary
