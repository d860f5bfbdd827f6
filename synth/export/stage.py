"""Export as a stage: one input part becomes one trainer file per format, `OUT/FORMAT/TASK/train-NNNNN.EXT`.

The executor resumes it like any stage. The negatives per row (fewest over a task's records unless given) and the
list of input parts are in the config, so a change that would rename or reshape any file redoes every part.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from synth.export.formats import FILE_TYPES, FIXED_NEGATIVES, ExportSettings
from synth.export.writer import convert_part, fewest_negatives
from synth.schema import Task
from synth.stage import PartResult, Stage, StageSummary, input_parts, run_stage
from synth.store import PartRef


class ExportStage(Stage):
    name = "export"

    def __init__(self, source: Path, formats: list[str], num_negatives: int | None, instruction_format: str | None):
        parts = input_parts([source])
        self.formats = formats
        self.instruction_format = instruction_format
        self.keys = [part.key for part in parts]
        self.positions: dict[str, int] = {}
        """Part key -> index among the parts of its task: the NNNNN of its `train-NNNNN` files."""
        self.negatives: dict[str, int] = {}
        for task in Task:
            task_parts = [p for p in parts if p.task == task]
            self.positions.update({part.key: index for index, part in enumerate(task_parts)})
            if task != Task.STS and task_parts:  # STS records have no negatives
                self.negatives[task.value] = (
                    num_negatives if num_negatives is not None else fewest_negatives(task_parts, task))

    def config(self) -> dict[str, Any]:
        return {"formats": self.formats, "negatives": self.negatives, "instruction_format": self.instruction_format,
                "parts": self.keys}

    def process(self, part: PartRef, table: pa.Table) -> PartResult:
        records = table.to_pylist()
        settings = ExportSettings(self.negatives.get(part.task.value, 0), self.instruction_format)
        files: dict[str, list[dict[str, Any]]] = {}
        stats: dict[str, int] = {}
        for name in self.formats:
            rows, skipped = convert_part(records, name, part.task, settings)
            key = f"{name}/{part.task.value}"
            if skipped:
                stats[f"skipped {key}"] = skipped
            if rows:
                stats[f"written {key}"] = len(rows)
                files[f"{key}/train-{self.positions[part.key]:05d}.{FILE_TYPES[name]}"] = rows
        return PartResult([], stats=stats, files=files)


def run_export(
    source: Path, out: Path, formats: list[str], num_negatives: int | None, instruction_format: str | None
) -> StageSummary:
    """Export `source` in every format; the summary counts rows written and skipped, and negatives per row."""
    stage = ExportStage(source, formats, num_negatives, instruction_format)
    summary = run_stage(stage, [source], out)
    summary.stats.update({f"negatives per row {name}/{task}": n for name in formats if name in FIXED_NEGATIVES
                          for task, n in stage.negatives.items()})
    return summary
