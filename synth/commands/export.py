"""`synth export`: final shards as sentence-transformers, FlagEmbedding or plain JSONL training files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from synth.commands.common import report_and_exit, stage_options
from synth.errors import ConfigError, UsageError
from synth.export.formats import FORMATS
from synth.export.writer import export_format
from synth.stage import StageSummary
from synth.store import list_parts, read_part

DEFAULTS: dict[str, Any] = {
    "inputs": [],
    "out": None,
    "format": ["sentence-transformers"],
    "num_negatives": None,
    "instruction_format": None,
}


def run(options: dict[str, Any]) -> StageSummary:
    """Export the one input directory in every requested format; the summary counts rows written and skipped."""
    inputs, out = options.get("inputs") or [], options.get("out")
    if len(inputs) != 1:
        raise UsageError(f"export takes exactly one input directory, got {len(inputs)}")
    if not out:
        raise UsageError("export needs --out DIR")
    names = [options["format"]] if isinstance(options["format"], str) else list(options["format"])
    unknown = [n for n in names if n not in FORMATS]
    if unknown or not names:
        raise ConfigError(f"unknown export format {unknown[0] if unknown else ''!r} (known: {', '.join(FORMATS)})")
    num_negatives = options.get("num_negatives")
    if num_negatives is not None and int(num_negatives) < 0:
        raise ConfigError(f"num_negatives must be 0 or more, got {num_negatives}")
    source = Path(inputs[0])
    summary = StageSummary("export", Path(out))
    summary.rows_in = sum(read_part(p).num_rows for p in list_parts(source))
    for name in names:
        report = export_format(source, Path(out), name, num_negatives, options.get("instruction_format"))
        summary.processed += len(report.files)
        summary.rows_out += sum(report.written.values())
        summary.stats.update(report.stats())
    return summary


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export_command(
        input_dir: Path = typer.Argument(..., help="Final data directory (the filter's output)."),
        out: Path | None = typer.Option(None, "--out", "-o", help="Where to write OUT/FORMAT/TASK/train-*.*"),
        format: list[str] = typer.Option(None, "--format", "-f",
                                         help=f"One of {', '.join(FORMATS)} (repeatable)."),
        num_negatives: int | None = typer.Option(
            None, help="negative_N columns for sentence-transformers (default: the most common count among records "
                 "with negatives; rows with fewer are skipped and counted)."),
        instruction_format: str | None = typer.Option(
            None, help="Put the instruction on queries, e.g. 'Instruct: {task}\\nQuery: {query}' (default: none)."),
        config: Path | None = typer.Option(None, "--config", help="TOML file; its [export] table gives options."),
    ) -> None:
        """Write trainer-ready files that `datasets.load_dataset` reads."""
        flags = {"inputs": [str(input_dir)], "out": str(out) if out else None, "format": format or None,
                 "num_negatives": num_negatives, "instruction_format": instruction_format}
        report_and_exit(run(stage_options("export", flags, DEFAULTS, config)))
