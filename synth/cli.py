"""The `synth` command line: one command per stage, errors as one line with an exit code."""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

import typer
from rich.console import Console
from rich.markup import escape

from synth.commands import batch, inspect, run, status
from synth.commands.stage import register_stage
from synth.errors import SynthError
from synth.stages import STAGES

app = typer.Typer(
    name="synth",
    help="Manufacture training data for text-embedding models: ingest, synthesise with LLMs, mine, filter, export.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Every registered stage in pipeline order, then the commands that look at or run stage outputs.
for _spec in STAGES:
    register_stage(app, _spec)
for _module in (inspect, run, status, batch):
    _module.register(app)


def _exit_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    """SIGTERM unwinds like Ctrl-C, so `with` blocks run: the demo LLM server stops, temporary files go."""
    raise SystemExit(128 + signum)


MACHINE_FAULT_EXIT = 1
"""A fault of the machine (disk full, folder not writable, a file gone mid-run): finished parts are kept."""


def machine_fault_message(exc: OSError) -> str:
    """One line naming the path and what happened, and what a rerun does."""
    where = f": {exc.filename}" if exc.filename else ""
    what = exc.strerror or str(exc) or type(exc).__name__
    return f"{what}{where}; finished parts are kept, run the same command again once this is fixed"


def main() -> None:
    """Entry point: run the app; a SynthError or a fault of the machine becomes one line on stderr and an exit code
    (SYNTH_DEBUG=1 shows the traceback instead)."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        app()
    except (SynthError, OSError) as exc:
        if os.environ.get("SYNTH_DEBUG") == "1":
            raise
        if isinstance(exc, SynthError):
            message, code = str(exc), exc.exit_code
        else:
            message, code = machine_fault_message(exc), MACHINE_FAULT_EXIT
        Console(stderr=True).print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
        sys.exit(code)
