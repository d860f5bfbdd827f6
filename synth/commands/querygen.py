"""`synth querygen`: persona-driven document-to-query generation in two LLM calls (Qwen3-Embedding)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Any

import typer

from synth.commands import synthesis_common as common
from synth.stage import StageSummary
from synth.synthesis.querygen import QUERYGEN_DEFAULTS, QuerygenStage

DEFAULTS: dict[str, Any] = common.synthesis_defaults(**QUERYGEN_DEFAULTS)


def run(options: dict[str, Any]) -> StageSummary:
    return common.run_synthesis(QuerygenStage, options)


def distribution(name: str, example: str) -> inspect.Parameter:
    option = typer.Option(f"--{name}", help=f"Weights, e.g. {example}.", rich_help_panel=common.PANEL)
    return common.flag(name.replace("-", "_"), Annotated[str | None, option])


def register(app: typer.Typer) -> None:
    personas = typer.Option("--personas", help="Persona pool (JSONL with a `persona` field) (default: the shipped "
                            "sample).", rich_help_panel=common.PANEL)
    top = typer.Option("--top-personas", min=1, help="Candidate personas per passage (default: 5).",
                       rich_help_panel=common.PANEL)
    common.register_stage_command(app, "querygen", run, DEFAULTS, [
        common.flag("drop_source", common.DropSource),
        common.flag("personas", Annotated[Path | None, personas]),
        common.flag("top_personas", Annotated[int | None, top]),
        distribution("question-types", "keywords=2,summary=1 (default: all five, equal)"),
        distribution("difficulties", "university=1,phd=1 (default: all three, equal)"),
        distribution("query-lengths", "5=1,10=2 in words (default: 5=1,10=2,15=2,25=1)"),
        distribution("query-languages", "same=3,en=1 (default: same=1)"),
        common.band("query-length-tolerance", "Query length within +-this share of the requested (default: 0.5)."),
        *common.EMBED_FLAGS,
    ], "Generate queries for passages from the point of view of matching personas (num = queries per passage).")
