"""Glue every stage command shares: resolve options from flags and config, print the summary, exit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from synth.config import load_section, resolve
from synth.stage import StageSummary
from synth.summary import exit_code, print_summary


def stage_options(
    section: str, flags: dict[str, Any], defaults: dict[str, Any], config: Path | None
) -> dict[str, Any]:
    """Options for one stage: a given flag wins over the `[section]` of the config file, which wins over defaults."""
    return resolve(flags, load_section(config, section), defaults)


def report_and_exit(summary: StageSummary) -> None:
    """Print the end-of-stage summary and leave with 0 (rejects are fine) or 1 (rows failed)."""
    print_summary(summary)
    raise typer.Exit(exit_code(summary))
