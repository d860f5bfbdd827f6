"""The executor: the one owner of resume, for every stage.

A stage is a function of (input part, config) to output part. The executor plans its parts, decides for each one
whether to skip or redo it, writes the part's files, records the manifest and sums the summary; stages never see a
manifest. `synth status` asks the same `decide` about the same plan, so status and run cannot disagree.

Subclasses only choose where parts run (`map_parts`): in this process, in a process pool, or (later) as Ray tasks.
"""

from __future__ import annotations

import contextlib
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from synth import storage
from synth.executor.collection import fewer_collections
from synth.executor.lock import stage_lock
from synth.progress import shared_progress
from synth.schema import Task
from synth.store import (
    Manifest,
    inside,
    is_failed,
    manifest_totals,
    part_key,
    remove_stale_temporaries,
    write_part_files,
)

if TYPE_CHECKING:
    from synth.embed.cached import CachedEmbedder

console = Console(stderr=True)


@dataclass
class PartResult:
    """What a stage made of one input part."""

    rows: list[dict[str, Any]] | pa.Table
    """The output rows, or a table already in the part task's Arrow schema (ingest's vectorised path)."""
    rejects: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    failed: int = 0
    """Rows that could not be finished (for example an LLM request that kept failing): retried next run."""
    files: dict[str, list[dict[str, Any]] | pa.Table] | None = None
    """Rows (or a table with its schema) by file path (relative, `.parquet` or `.jsonl`) for a stage with its own
    layout (export, split), written instead of the unified `TASK/part-NNNNN.parquet`."""
    rows_in: int | None = None
    """Rows of the input part; set by whoever reads the part."""


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


@dataclass(frozen=True)
class PartPlan:
    """One part to make: its output name, what it is made from and that input's fingerprint."""

    task: Task
    name: str
    input: str
    """What the part is made from, as the manifest records it (a part path, or a file and its row span)."""
    fingerprint: str
    source: Any = None
    """What the stage's `run_part` reads (a PartRef, an ingest chunk); plain data, so it can go to a worker."""
    progress: int = 0
    """Where the progress bar stands once this part is handled (parts or bytes, see `PartWork.progress_unit`)."""

    @property
    def key(self) -> str:
        return part_key(self.task, self.name)


class PartWork(ABC):
    """A stage as an executor runs it: a config, a plan of parts, and a pure function of one part."""

    name: str = "stage"
    progress_unit: str = "parts"
    """"parts" or "bytes": what `PartPlan.progress` and `progress_total` count."""
    progress_total: int | None = None
    holds_model: bool = False
    """Whether parts need a model worth loading once per worker (the embedder): a cluster runs them on actors."""
    parts_in_flight: int = 1
    """Parts run at once in threads of this process by the local executor (one worker): a stage whose parts mostly
    wait on the network (the LLM stages) overlaps one part's tail with the next; parts are still recorded in order."""

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """The resolved configuration that decides the output (never secrets)."""

    @abstractmethod
    def plan(self) -> Iterable[PartPlan]:
        """Every part of the stage, in order; may be a stream (ingest reads its input once)."""

    def prepare(self) -> None:
        """Build global state once, before the first part that is not skipped."""

    def prepare_embedder(self) -> CachedEmbedder | None:
        """The embedder `prepare` embeds a corpus with (mining's index), which a cluster spreads over the actors that
        hold the model; None when `prepare` embeds nothing."""
        return None

    @abstractmethod
    def run_part(self, plan: PartPlan) -> PartResult:
        """Turn one input part into rows, rejects and stats; may run in another process."""

    def finish(self, out: Path) -> dict[str, Any]:
        """Stage-level facts to record beside the parts (an index, thresholds), once all parts are done."""
        return {}

    def endpoint_usage(self) -> dict[str, Any]:
        """Per-endpoint usage (`synth.llm.endpoint_stats`) of the LLM engines this process made for the stage: the
        manifest's `endpoints`. {} for a stage that asks no endpoint."""
        return {}

    def close(self) -> None:
        """Release connections and files; runs whether the stage finished or stopped with an error."""


class Decision(StrEnum):
    """What a run does with one planned part."""

    SKIP = "skip"
    NEW = "new"
    CHANGED = "changed"
    CONFIG = "config changed"
    FAILED = "failed"
    MISSING = "files missing"


def decide(entry: dict[str, Any] | None, plan: PartPlan, cfg_hash: str, directory: Path) -> Decision:
    """The one resume decision: skip a part only when it finished with the same input and config and its files
    are still on disk."""
    if entry is None:
        return Decision.NEW
    if entry.get("fingerprint") != plan.fingerprint:
        return Decision.CHANGED
    if is_failed(entry):
        return Decision.FAILED
    if entry.get("config_hash") != cfg_hash:
        return Decision.CONFIG
    if not all(inside(directory, rel).exists() for rel in entry.get("files", [])):
        return Decision.MISSING
    return Decision.SKIP


def dry_run(plans: Iterable[PartPlan], directory: Path, manifest: dict[str, Any]) -> Counter[Decision]:
    """What a rerun with the manifest's own config would do with each part; nothing is read or written but the
    input fingerprints."""
    entries, cfg_hash = manifest.get("parts", {}), manifest.get("config_hash", "")
    return Counter(decide(entries.get(plan.key), plan, cfg_hash, Path(directory)) for plan in plans)


def count_rejects(rejects: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rejects:
        counts[row["rule"]] = counts.get(row["rule"], 0) + 1
    return counts


def execute_part(work: PartWork, plan: PartPlan, out: Path) -> dict[str, Any]:
    """Make one part and write its files (anywhere: this process, a worker); returns its manifest entry."""
    started = time.monotonic()
    result = work.run_part(plan)
    files = write_part_files(out, plan.task, plan.name, result.rows, result.rejects, result.files)
    rows_out = len(result.rows) if result.files is None else sum(len(rows) for rows in result.files.values())
    return {
        "input": plan.input,
        "fingerprint": plan.fingerprint,
        "files": files,
        "rows_in": result.rows_in or 0,
        "rows_out": rows_out,
        "rows_rejected": len(result.rejects),
        "rejects_by_rule": count_rejects(result.rejects),
        "failed": result.failed,
        "seconds": round(time.monotonic() - started, 3),
        "stats": result.stats,
    }


def record_endpoints(manifest: Manifest, usages: list[dict[str, Any]]) -> None:
    """The run's per-endpoint requests, failures, latency percentiles and cost, folded over every process that sent
    (this one, a cluster's workers), as the manifest's `endpoints`."""
    from synth.llm import endpoint_stats  # here: synth.llm imports the stages, which import this

    folded = {name: usage for name, usage in endpoint_stats.fold(usages).items() if usage["requests"]}
    if folded:
        manifest.set("endpoints", endpoint_stats.summaries(folded))


def say_skipped(stage: str, skipped: int, total: int) -> None:
    """Tell a rerun's user what it did not redo (plain text: `[stage]` is not rich markup)."""
    if skipped:
        console.print(f"[{stage}] {skipped} of {total} parts already finished: skipped", markup=False)


def _columns(work: PartWork) -> tuple[ProgressColumn, ...]:
    if work.progress_unit == "bytes":
        return (TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                TimeElapsedColumn())
    return TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()


@contextlib.contextmanager
def _shipped(out: Path) -> Iterator[None]:
    """On an object store, the stage's other files (its journal, mining's index) and its manifest are put when the
    stage ends, finished or not: answers bought before an error are kept."""
    try:
        yield
    finally:
        storage.push_tree(out)


class Executor(ABC):
    """Runs a stage's parts; `run` is the same for every executor, `map_parts` says where parts run."""

    @abstractmethod
    def map_parts(self, work: PartWork, todo: Iterator[PartPlan], out: Path) -> Iterator[tuple[PartPlan, dict]]:
        """Run `execute_part` for every plan of `todo` and yield (plan, entry) in `todo`'s order."""

    def run(self, work: PartWork, out: Path, *, quiet: bool = False) -> StageSummary:
        """Make every part not already done with the same input and config; return the stage's summary."""
        plans = work.plan()  # a planner checks its inputs here, before anything is written
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        with stage_lock(out), _shipped(out):
            remove_stale_temporaries(out)
            manifest = Manifest(out, work.name)
            cfg_hash = manifest.set_config(work.config())
            summary = StageSummary(work.name, out)
            seen: set[str] = set()
            with (Progress(*_columns(work), console=console, disable=quiet) as progress, shared_progress(progress),
                  fewer_collections()):
                bar = progress.add_task(work.name, total=work.progress_total)

                def todo() -> Iterator[PartPlan]:
                    prepared = False
                    for plan in plans:
                        seen.add(plan.key)
                        if decide(manifest.parts.get(plan.key), plan, cfg_hash, out) is Decision.SKIP:
                            summary.skipped += 1
                            progress.update(bar, completed=plan.progress)
                            continue
                        if not prepared:
                            work.prepare()
                            prepared = True
                        yield plan

                sent: list[dict[str, Any]] = []  # per-endpoint usage of the parts made in other processes
                try:
                    for plan, entry in self.map_parts(work, todo(), out):
                        sent.append(entry.pop("endpoints", {}))
                        manifest.record(plan.key, {**entry, "config_hash": cfg_hash})  # the checkpoint
                        summary.processed += 1
                        progress.update(bar, completed=plan.progress)
                    for key in [k for k in manifest.parts if k not in seen]:
                        manifest.drop(key)  # parts no longer in the input: a rerun equals a clean run
                    for name, value in work.finish(out).items():
                        manifest.set(name, value)
                    record_endpoints(manifest, [*sent, work.endpoint_usage()])
                finally:
                    work.close()
            if not quiet:
                say_skipped(work.name, summary.skipped, len(seen))
            totals = manifest_totals(manifest.data)
            manifest.set("totals", totals)
        summary.rows_in, summary.rows_out = totals["rows_in"], totals["rows_out"]
        summary.rejected, summary.rejects_by_rule = totals["rows_rejected"], totals["rejects_by_rule"]
        summary.failed, summary.stats = totals["failed"], totals["stats"]
        return summary
