"""Run a stage part by part: skip finished parts, write each output part atomically, keep the manifest.

A stage is a pure function of (input part, config) to output part; this module is the only place that
knows about resume, manifests and progress, so stages stay small.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from synth.errors import InputFileError
from synth.progress import shared_progress
from synth.store import (
    Manifest,
    PartRef,
    config_hash,
    file_fingerprint,
    list_parts,
    part_name,
    read_part,
    write_part,
    write_rejects,
)

console = Console(stderr=True)


@dataclass
class PartResult:
    """What a stage made of one input part."""

    rows: list[dict[str, Any]]
    rejects: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    failed: int = 0
    """Rows that could not be finished (for example an LLM request that kept failing): retried next run."""


class Stage(ABC):
    """Base of every part-wise stage: override `process`, and `prepare` when global state is needed."""

    name: str = "stage"

    def config(self) -> dict[str, Any]:
        """The resolved configuration that decides the output (never secrets)."""
        return {}

    def prepare(self, parts: list[PartRef]) -> None:
        """Build global state (an index, dedup signatures) once before parts are processed."""

    @abstractmethod
    def process(self, part: PartRef, table: pa.Table) -> PartResult:
        """Turn one input part into output rows, rejects and stats."""

    def finish(self, manifest: Manifest) -> None:
        """Write stage-level facts once all parts are done."""

    def close(self) -> None:
        """Release connections and files; runs whether the stage finished or stopped with an error."""


@dataclass
class StageSummary:
    stage: str
    out: Path
    processed: int = 0
    skipped: int = 0
    rows_in: int = 0
    rows_out: int = 0
    rejected: int = 0
    failed: int = 0
    rejects_by_rule: dict[str, int] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)


def input_parts(inputs: list[Path]) -> list[PartRef]:
    """All parts of the input stage directories, in a stable order."""
    parts: list[PartRef] = []
    for directory in inputs:
        if not Path(directory).exists():
            raise InputFileError(f"input not found: {directory}")
        found = list_parts(Path(directory))
        if not found:
            raise InputFileError(f"no Parquet parts in {directory} (expected TASK/part-*.parquet)")
        parts += found
    return parts


def count_rejects(rejects: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rejects:
        counts[row["rule"]] = counts.get(row["rule"], 0) + 1
    return counts


def remove_stale_parts(out: Path, manifest: Manifest, keys: set[str]) -> None:
    """Drop outputs of parts that no longer exist in the input, so a rerun equals a clean run."""
    for key in [k for k in manifest.parts if k not in keys]:
        for rel in manifest.parts.pop(key).get("files", []):
            (out / rel).unlink(missing_ok=True)
    manifest.save()


def say_skipped(stage: str, skipped: int, total: int) -> None:
    """Tell a rerun's user what it did not redo (plain text: `[stage]` is not rich markup)."""
    if skipped:
        console.print(f"[{stage}] {skipped} of {total} parts already finished: skipped", markup=False)


def process_parts(stage: Stage, todo: list[tuple[PartRef, str, str]], out: Path, manifest: Manifest, cfg_hash: str,
                  *, quiet: bool = False) -> None:
    """Process each (part, output name, fingerprint) and record it in the manifest at once (the checkpoint)."""
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, disable=quiet or not todo,
    ) as progress, shared_progress(progress):  # LLM request bars join this display (rich allows one)
        bar = progress.add_task(stage.name, total=len(todo))
        for part, name, fingerprint in todo:
            started = time.monotonic()
            table = read_part(part)
            result = stage.process(part, table)
            files = [write_part(out, part.task, name, result.rows)]
            rejects_file = write_rejects(out, part.task, name, result.rejects)
            if rejects_file:
                files.append(rejects_file)
            manifest.record(
                f"{part.task.value}/{name}",
                {
                    "input": str(part.path),
                    "fingerprint": fingerprint,
                    "config_hash": cfg_hash if not result.failed else "incomplete",
                    "files": files,
                    "rows_in": table.num_rows,
                    "rows_out": len(result.rows),
                    "rows_rejected": len(result.rejects),
                    "rejects_by_rule": count_rejects(result.rejects),
                    "failed": result.failed,
                    "seconds": round(time.monotonic() - started, 3),
                    "stats": result.stats,
                },
            )
            progress.advance(bar)


def run_stage(stage: Stage, inputs: list[Path], out: Path, *, quiet: bool = False) -> StageSummary:
    """Process every input part not already done with the same input and config; return the summary."""
    parts = input_parts(inputs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(out, stage.name)
    cfg_hash = manifest.set_config(stage.config())
    summary = StageSummary(stage.name, out)
    # Output part names are positional over all inputs, so two input folders never collide.
    work = [(part, part_name(i), file_fingerprint(part.path)) for i, part in enumerate(parts)]
    todo = [w for w in work if not manifest.is_done(f"{w[0].task.value}/{w[1]}", w[2], cfg_hash)]
    remove_stale_parts(out, manifest, {f"{p.task.value}/{name}" for p, name, _ in work})
    summary.skipped = len(work) - len(todo)
    if not quiet:
        say_skipped(stage.name, summary.skipped, len(work))
    try:
        if todo:
            stage.prepare(parts)
        process_parts(stage, todo, out, manifest, cfg_hash, quiet=quiet)
        summary.processed = len(todo)
        stage.finish(manifest)
    finally:
        stage.close()
    totals = manifest.totals()
    summary.rows_in, summary.rows_out = totals["rows_in"], totals["rows_out"]
    summary.rejected, summary.rejects_by_rule = totals["rows_rejected"], totals["rejects_by_rule"]
    summary.stats = totals["stats"]
    summary.failed = sum(e.get("failed", 0) for e in manifest.parts.values())
    manifest.set("totals", totals)
    return summary


__all__ = ["PartResult", "Stage", "StageSummary", "config_hash", "run_stage"]
