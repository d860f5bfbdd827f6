"""Export as a registered stage: final shards as sentence-transformers, FlagEmbedding or plain JSONL training files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synth.errors import ConfigError, UsageError
from synth.executor import PartPlan
from synth.export.formats import FORMATS
from synth.export.stage import export_plans, run_export
from synth.registry import Inputs, Option, StageSpec
from synth.stage import StageSummary

OPTIONS: tuple[Option, ...] = (
    Option("out", Path, None, "Where to write OUT/FORMAT/TASK/train-*.*", flags=("--out", "-o")),
    Option("format", list[str], ["sentence-transformers"], f"One of {', '.join(FORMATS)} (repeatable).",
           flags=("--format", "-f")),
    Option("num_negatives", int, None, "negative_N columns for sentence-transformers; rows with fewer negatives "
           "are skipped and counted.", default_text="the most common count among records with negatives"),
    Option("instruction_format", str, None, "Put the instruction on queries, e.g. 'Instruct: {task}\\nQuery: {query}'.",
           default_text="none"),
)


def run(options: dict[str, Any]) -> StageSummary:
    """Export the one input directory in every requested format; the summary counts rows written and skipped."""
    out = options.get("out")
    source = EXPORT.input_dir(options)
    if not out:
        raise UsageError("export needs --out DIR")
    names = [options["format"]] if isinstance(options["format"], str) else list(options["format"])
    unknown = [n for n in names if n not in FORMATS]
    if unknown or not names:
        raise ConfigError(f"unknown export format {unknown[0] if unknown else ''!r} (known: {', '.join(FORMATS)})")
    num_negatives = options.get("num_negatives")
    if num_negatives is not None and int(num_negatives) < 0:
        raise ConfigError(f"num_negatives must be 0 or more, got {num_negatives}")
    return run_export(source, Path(out), names, num_negatives, options.get("instruction_format"))


def plan(options: dict[str, Any]) -> list[PartPlan]:
    """The parts a run of export with these options plans."""
    return export_plans(EXPORT.input_dir(options))


EXPORT = StageSpec(
    "export", "Write trainer-ready files that `datasets.load_dataset` reads.",
    Inputs("Final data directory (the filter's output).", name="input_dir", many=False), OPTIONS, run,
    out_folder="export", plan=plan)
