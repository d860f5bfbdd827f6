"""What the four synthesis commands share: their common flags, defaults and the run wrapper."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from synth.commands import llm_options as llm
from synth.commands.common import report_and_exit, stage_options
from synth.commands.llm_options import LLM_DEFAULTS
from synth.errors import UsageError
from synth.llm import LLMSettings, local_endpoint_if_needed
from synth.stage import StageSummary, run_stage
from synth.synthesis.base import SYNTHESIS_DEFAULTS, SynthesisStage

PANEL = "Synthesis"
EMBED_PANEL = "Embedder (optional)"


def synthesis_defaults(**stage_defaults: Any) -> dict[str, Any]:
    """A synthesis command's DEFAULTS: inputs/out, every LLM option, the shared synthesis options, its own."""
    return {"inputs": [], "out": None, **LLM_DEFAULTS, **SYNTHESIS_DEFAULTS, **stage_defaults}


def run_synthesis(stage_class: type[SynthesisStage], options: dict[str, Any]) -> StageSummary:
    """Check options and templates (before any request), then run the stage against the endpoint."""
    if not options.get("inputs"):
        raise UsageError(f"{stage_class.name} needs at least one input directory")
    if not options.get("out"):
        raise UsageError(f"{stage_class.name} needs --out DIR")
    settings = LLMSettings.from_options(options)
    stage = stage_class(options, settings)
    inputs = [Path(p) for p in options["inputs"]]
    with local_endpoint_if_needed(settings) as live:
        stage.settings = live
        return run_stage(stage, inputs, Path(options["out"]))


Inputs = Annotated[list[Path], typer.Argument(help="Stage output directories (unified shards) to read.")]
Out = Annotated[Path | None, typer.Option("--out", "-o", help="Output directory.")]
Num = Annotated[int | None, typer.Option(
    "--num", "-n", min=1, help="Outputs per record (default: 3; querygen: queries per passage, 1).",
    rich_help_panel=PANEL)]
MaxTries = Annotated[int | None, typer.Option(
    "--max-tries", min=1, help=f"Requests per record before giving up (default: {SYNTHESIS_DEFAULTS['max_tries']})",
    rich_help_panel=PANEL)]
Prompts = Annotated[Path | None, typer.Option(
    "--prompts", help="Folder of TECHNIQUE.LANG.jinja templates that replace or add to the built-in ones.",
    rich_help_panel=PANEL)]
DropSource = Annotated[bool | None, typer.Option(
    "--drop-source/--keep-source", help="Write only the new rows, not the input records (default: keep).",
    rich_help_panel=PANEL)]
Config = Annotated[Path | None, typer.Option("--config", help="TOML file; the command's table gives options.")]
Embedder = Annotated[str | None, typer.Option(
    "--embedder", help="Use an embedder (local) for similarity (default: lexical measures only).",
    rich_help_panel=EMBED_PANEL)]
EmbedModel = Annotated[str | None, typer.Option(
    "--embed-model", help="Embedding model (default: the shipped MiniLM).", rich_help_panel=EMBED_PANEL)]
EmbedCache = Annotated[Path | None, typer.Option(
    "--embed-cache", help="Embedding cache directory.", rich_help_panel=EMBED_PANEL)]


def band(name: str, help_text: str) -> inspect.Parameter:
    """A float option of a check (`--NAME`), shown in the synthesis panel."""
    option = typer.Option(f"--{name}", min=0.0, help=help_text, rich_help_panel=PANEL)
    return flag(name.replace("-", "_"), Annotated[float | None, option])


def flag(name: str, annotation: Any) -> inspect.Parameter:
    """A command parameter that defaults to None, so "not given" is visible to option resolution."""
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)


SHARED_FLAGS = [flag("out", Out), flag("num", Num), flag("max_tries", MaxTries), flag("prompts", Prompts)]
EMBED_FLAGS = [flag("embedder", Embedder), flag("embed_model", EmbedModel), flag("embed_cache", EmbedCache)]
LLM_FLAGS = [flag(name, alias) for name, alias in (
    ("model", llm.Model), ("base_url", llm.BaseUrl), ("api_key", llm.ApiKey), ("concurrency", llm.Concurrency),
    ("rpm", llm.Rpm), ("tpm", llm.Tpm), ("temperature", llm.Temperature), ("max_tokens", llm.MaxTokens),
    ("timeout", llm.Timeout), ("max_attempts", llm.MaxAttempts), ("structured", llm.Structured), ("seed", llm.Seed),
)]


def register_stage_command(
    app: typer.Typer, name: str, run: Callable[[dict[str, Any]], StageSummary], defaults: dict[str, Any],
    own_flags: list[inspect.Parameter], summary: str,
) -> None:
    """Register `synth NAME INPUTS... [flags]`: the shared flags, the stage's own, the LLM flags and --config.

    The command's signature is assembled from parameter lists, so every synthesis command offers the same flags
    under the same names without repeating them.
    """

    def command(**given: Any) -> None:
        config = given.pop("config")
        flags = {key: str(value) if isinstance(value, Path) else value for key, value in given.items()}
        flags["inputs"] = [str(p) for p in given["inputs"]]
        report_and_exit(run(stage_options(name, flags, defaults, config)))

    inputs = inspect.Parameter("inputs", inspect.Parameter.KEYWORD_ONLY, annotation=Inputs)
    command.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inputs, *SHARED_FLAGS, *own_flags, *LLM_FLAGS, flag("config", Config)])
    command.__doc__ = summary
    command.__name__ = f"{name.replace('-', '_')}_command"
    app.command(name)(command)
