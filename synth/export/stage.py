"""Export as a stage: one input part becomes one trainer file per format, `OUT/FORMAT/TASK/train-NNNNN.EXT`.

The executor resumes it like every other stage. Parts keep their input part's name, so each output file belongs to
exactly one input part on every run. The negatives per row of each task (from the data unless given) are part of
the config, so a change that would reshape the files redoes every part.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from synth.executor import PartPlan
from synth.export.formats import FORMATS
from synth.export.writer import ExportSettings, convert_rows, default_negatives, negative_counts
from synth.stage import PartResult, Stage, StageSummary, input_parts, plan_input_parts, run_stage
from synth.store import PartRef
from synth.tasks import TASKS

NEGATIVES_PER_ROW = "negatives_per_row"
"""The manifest's stage-level record of the negative columns per `format/task`."""


def export_plans(source: Path) -> list[PartPlan]:
    """The export's parts: one per input part, named as that part (what a run and `synth status` plan)."""
    return plan_input_parts([Path(source)], own_names=True)


class ExportStage(Stage):
    name = "export"

    def __init__(self, source: Path, formats: list[str], num_negatives: int | None, instruction_format: str | None):
        self.formats = formats
        self.instruction_format = instruction_format
        parts = input_parts([Path(source)])
        self.negatives: dict[str, int] = {}
        """Task -> negative columns, for the task types with negatives that some fixed-column format writes."""
        if any(FORMATS[name].fixed_negatives for name in formats):
            for task in {p.task for p in parts if TASKS[p.task].negatives}:
                counts = negative_counts([p for p in parts if p.task == task])
                self.negatives[task.value] = num_negatives if num_negatives is not None else default_negatives(counts)

    def config(self) -> dict[str, Any]:
        return {"formats": self.formats, "negatives": self.negatives, "instruction_format": self.instruction_format}

    def process(self, part: PartRef, table: pa.Table) -> PartResult:
        records = table.to_pylist()
        files: dict[str, list[dict[str, Any]]] = {}
        stats: dict[str, int] = {}
        for name in self.formats:
            export, key = FORMATS[name], f"{name}/{part.task.value}"
            convert = TASKS[part.task].exports.get(name)
            if convert is None:
                stats[f"format {name} does not support task {part.task.value}: rows not exported"] = len(records)
                continue
            n = self.negatives.get(part.task.value, 0) if export.fixed_negatives else 0
            rows = convert_rows(records, convert, ExportSettings(n, self.instruction_format))
            if len(records) > len(rows):
                stats[f"skipped {key}"] = len(records) - len(rows)
            if n:
                short = sum(len(r.get("negatives") or []) < n for r in records)
                if short:
                    stats[f"skipped {key}: fewer than {n} negatives"] = short
            if rows:
                stats[f"written {key}"] = len(rows)
                files[f"{key}/{part.name.replace('part-', 'train-')}.{export.file_type}"] = rows
        return PartResult([], stats=stats, files=files)

    def finish(self, out: Path) -> dict[str, Any]:
        return {NEGATIVES_PER_ROW: {f"{name}/{task}": n for name in self.formats if FORMATS[name].fixed_negatives
                                    for task, n in self.negatives.items()}}


def run_export(
    source: Path, out: Path, formats: list[str], num_negatives: int | None, instruction_format: str | None
) -> StageSummary:
    """Export `source` in every format; the summary counts rows written and skipped, and the negatives per row."""
    stage = ExportStage(source, formats, num_negatives, instruction_format)
    summary = run_stage(stage, [Path(source)], Path(out), plans=export_plans(source))
    columns = stage.finish(Path(out))[NEGATIVES_PER_ROW]
    summary.stats.update({f"negatives per row {key}": n for key, n in columns.items()})
    return summary
