"""Plan an ingest: check every input first, then cut each file into fixed row ranges, one part each.

Part N covers a fixed range of input rows; its fingerprint is the hash of those input bytes (plus the file's source
name), and the config hash covers every option, so a rerun redoes exactly the parts whose input or config changed.
The executor decides what to skip and writes the parts, with `--workers N` in worker processes.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synth.errors import InputFileError
from synth.executor import PartPlan, PartResult, PartWork, StageSummary, executor_for
from synth.ingest.classes import ClassPool
from synth.ingest.options import DOCUMENTS, IngestOptions, ingest_options
from synth.ingest.parts import make_part
from synth.ingest.readers import EXTENSIONS, FORMATS, Chunk, columns, detect_format, read_chunks
from synth.ingest.records import STAGE, RecordMaker
from synth.ingest.text_files import total_bytes
from synth.ingest.values import Rejected, top_column
from synth.schema import Task
from synth.store import part_name


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
        if fmt == "text" and opts.shape.name != DOCUMENTS:
            raise InputFileError(
                f"cannot tell the format of {path} for shape {opts.shape.name}: a .txt / .md file is one document "
                f"(--shape documents); pass --format ({', '.join(f for f in FORMATS if f != 'text')})"
            )
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


def input_bytes(path: Path) -> int:
    """Bytes of an input file, or of the documents in an input folder."""
    return path.stat().st_size if path.is_file() else total_bytes(path)


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
        offset += input_bytes(item.path)


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


def ingest_plans(opts: IngestOptions, files: list[InputFile]) -> Iterator[PartPlan]:
    """Part N covers the N-th fixed row range; its fingerprint hashes the range's input bytes and the source name."""
    for index, (item, offset, chunk) in enumerate(_chunks(opts, files)):
        fingerprint = hashlib.sha256(f"{item.source}\x00{chunk.digest}".encode()).hexdigest()
        yield PartPlan(opts.shape.task, part_name(index), f"{item.path.name} {chunk.span}", fingerprint,
                       (item.source, chunk), offset + chunk.position)


def plan_ingest(options: dict[str, Any]) -> Iterator[PartPlan]:
    """The parts an ingest with these resolved options plans (what `synth status` compares with the manifest)."""
    opts = ingest_options(options)
    return ingest_plans(opts, plan_inputs(opts))


class IngestWork(PartWork):
    """An ingest as the executor runs it: inputs checked and the CLS class pool built before anything is written."""

    name = STAGE
    progress_unit = "bytes"

    def __init__(self, opts: IngestOptions):
        self.opts = opts
        self.files = plan_inputs(opts)
        self.pool = build_class_pool(opts, self.files) if opts.shape.task is Task.CLS else None
        self.progress_total = sum(input_bytes(item.path) for item in self.files)

    def config(self) -> dict[str, Any]:
        config = self.opts.config()
        if self.pool is not None:
            config["class_pool_digest"] = self.pool.digest()
        return config

    def plan(self) -> Iterator[PartPlan]:
        return ingest_plans(self.opts, self.files)

    def run_part(self, plan: PartPlan) -> PartResult:
        source, chunk = plan.source
        return make_part(self.opts, self.pool, source, chunk)


def run_ingest(opts: IngestOptions, *, quiet: bool = False) -> StageSummary:
    """The whole ingest; returns the summary (counts over all parts, finished now or before)."""
    return executor_for(opts.workers).run(IngestWork(opts), opts.out, quiet=quiet)
