"""What the four synthesis commands share: their common flags, defaults and the run wrapper."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

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


def band(name: str, help_text: str) -> Any:
    """A float option of a check, shown in the synthesis panel."""
    return typer.Option(None, f"--{name}", min=0.0, help=help_text, rich_help_panel=PANEL)


def common_flags(inputs: list[Path], out: Path | None, num: int | None, max_tries: int | None,
                 prompts: Path | None, drop_source: bool | None) -> dict[str, Any]:
    return {"inputs": [str(p) for p in inputs], "out": str(out) if out else None, "num": num,
            "max_tries": max_tries, "prompts": str(prompts) if prompts else None, "drop_source": drop_source}


def embed_flags(embedder: str | None, embed_model: str | None, embed_cache: Path | None) -> dict[str, Any]:
    return {"embedder": embedder, "embed_model": embed_model, "embed_cache": str(embed_cache) if embed_cache else None}
