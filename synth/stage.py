"""The contract of a part-wise stage over Parquet parts, and `run_stage`, which hands it to the executor.

A stage is a pure function of (input part, config) to output part: it never sees manifests, resume or scheduling,
which `synth.executor` owns for every stage. Here a stage's input parts are planned: one output part per input
part, named by position over all inputs, fingerprinted by the input file's bytes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from synth.errors import InputFileError
from synth.executor import PartPlan, PartResult, PartWork, StageSummary, console, executor_for
from synth.store import PartRef, config_hash, file_fingerprint, list_parts, part_name, read_part

if TYPE_CHECKING:
    from synth.embed.cached import CachedEmbedder


class Stage(ABC):
    """Base of every part-wise stage: override `process`, and `prepare` when global state is needed."""

    name: str = "stage"
    holds_model: bool = False
    """Whether `process` needs a loaded model (the embedder): see `PartWork.holds_model`."""
    parts_in_flight: int = 1
    """Parts made at once (threads): see `PartWork.parts_in_flight`."""

    def config(self) -> dict[str, Any]:
        """The resolved configuration that decides the output (never secrets)."""
        return {}

    def prepare(self, parts: list[PartRef]) -> None:
        """Build global state (an index, dedup signatures) once before parts are processed."""

    def prepare_embedder(self) -> CachedEmbedder | None:
        """See `PartWork.prepare_embedder`."""
        return None

    @abstractmethod
    def process(self, part: PartRef, table: pa.Table) -> PartResult:
        """Turn one input part into output rows, rejects and stats."""

    def finish(self, out: Path) -> dict[str, Any]:
        """Stage-level facts to record beside the parts once all are done (the written parts are under `out`)."""
        return {}

    def endpoint_usage(self) -> dict[str, Any]:
        """See `PartWork.endpoint_usage`."""
        return {}

    def close(self) -> None:
        """Release connections and files; runs whether the stage finished or stopped with an error."""


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


def plan_input_parts(inputs: list[Path], *, own_names: bool = False) -> list[PartPlan]:
    """One output part per input part; names are positional over all inputs, so two input folders never collide,
    or with `own_names` (one input folder) the input part's own name."""
    return [
        PartPlan(part.task, part.name if own_names else part_name(index), str(part.path),
                 file_fingerprint(part.path), part, index + 1)
        for index, part in enumerate(input_parts(inputs))
    ]


class StageWork(PartWork):
    """A `Stage` over the parts of its input directories, as the executor runs it."""

    def __init__(self, stage: Stage, inputs: list[Path], plans: list[PartPlan] | None = None):
        self.stage = stage
        self.name = stage.name
        self.holds_model = stage.holds_model
        self.plans = plan_input_parts(inputs) if plans is None else plans
        self.progress_total = len(self.plans)
        self.parts_in_flight = stage.parts_in_flight

    def config(self) -> dict[str, Any]:
        return self.stage.config()

    def plan(self) -> list[PartPlan]:
        return self.plans

    def prepare(self) -> None:
        self.stage.prepare([plan.source for plan in self.plans])

    def prepare_embedder(self) -> CachedEmbedder | None:
        return self.stage.prepare_embedder()

    def run_part(self, plan: PartPlan) -> PartResult:
        table = read_part(plan.source)
        result = self.stage.process(plan.source, table)
        result.rows_in = table.num_rows
        return result

    def finish(self, out: Path) -> dict[str, Any]:
        return self.stage.finish(out)

    def endpoint_usage(self) -> dict[str, Any]:
        return self.stage.endpoint_usage()

    def close(self) -> None:
        self.stage.close()


def run_stage(
    stage: Stage, inputs: list[Path], out: Path, *, quiet: bool = False, plans: list[PartPlan] | None = None
) -> StageSummary:
    """Process every input part not already done with the same input and config; return the summary.

    `plans` replaces the default plan (one part per input part, named by position)."""
    return executor_for().run(StageWork(stage, inputs, plans), Path(out), quiet=quiet)


__all__ = ["PartResult", "Stage", "StageSummary", "config_hash", "console", "input_parts", "run_stage"]
