"""The `synth` command line: one command per stage, errors as one line with an exit code."""

from __future__ import annotations

import signal
import sys
from types import FrameType

import typer
from rich.console import Console
from rich.markup import escape

from synth.commands import inspect, run, status
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
for _module in (inspect, run, status):
    _module.register(app)


def _exit_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    """SIGTERM unwinds like Ctrl-C, so `with` blocks run: the demo LLM server stops, temporary files go."""
    raise SystemExit(128 + signum)


def main() -> None:
    """Entry point: run the app; a SynthError becomes one line on stderr and its exit code."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        app()
    except SynthError as exc:
        Console(stderr=True).print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
