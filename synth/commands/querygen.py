"""`synth querygen`: persona-driven document-to-query generation in two LLM calls (Qwen3-Embedding)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from synth.commands import llm_options as llm
from synth.commands import synthesis_common as common
from synth.commands.common import report_and_exit, stage_options
from synth.stage import StageSummary
from synth.synthesis.querygen import QUERYGEN_DEFAULTS, QuerygenStage

DEFAULTS: dict[str, Any] = common.synthesis_defaults(**QUERYGEN_DEFAULTS)


def run(options: dict[str, Any]) -> StageSummary:
    return common.run_synthesis(QuerygenStage, options)


def distribution(name: str, example: str) -> Any:
    return typer.Option(None, f"--{name}", help=f"Weights, e.g. {example}.", rich_help_panel=common.PANEL)


def register(app: typer.Typer) -> None:
    @app.command("querygen")
    def querygen_command(
        inputs: common.Inputs,
        out: common.Out = None,
        num: common.Num = None,
        max_tries: common.MaxTries = None,
        prompts: common.Prompts = None,
        drop_source: common.DropSource = None,
        personas: Path | None = typer.Option(
            None, "--personas", help="Persona pool (JSONL with a `persona` field) (default: the shipped sample).",
            rich_help_panel=common.PANEL),
        top_personas: int | None = typer.Option(
            None, "--top-personas", min=1, help="Candidate personas per passage (default: 5).",
            rich_help_panel=common.PANEL),
        question_types: str | None = distribution("question-types", "keywords=2,summary=1 (default: all five, equal)"),
        difficulties: str | None = distribution("difficulties", "university=1,phd=1 (default: all three, equal)"),
        query_lengths: str | None = distribution("query-lengths", "5=1,10=2 (words) (default: 5=1,10=2,15=2,25=1)"),
        query_languages: str | None = distribution("query-languages", "same=3,en=1 (default: same=1)"),
        query_length_tolerance: float | None = common.band(
            "query-length-tolerance", "Query length within +-this share of the requested (default: 0.5)."),
        embedder: common.Embedder = None, embed_model: common.EmbedModel = None, embed_cache: common.EmbedCache = None,
        model: llm.Model = None, base_url: llm.BaseUrl = None, api_key: llm.ApiKey = None,
        concurrency: llm.Concurrency = None, rpm: llm.Rpm = None, tpm: llm.Tpm = None,
        temperature: llm.Temperature = None, max_tokens: llm.MaxTokens = None, timeout: llm.Timeout = None,
        max_attempts: llm.MaxAttempts = None, structured: llm.Structured = None, seed: llm.Seed = None,
        config: common.Config = None,
    ) -> None:
        """Generate queries for passages from the point of view of matching personas (num = queries per passage)."""
        flags = {
            **common.common_flags(inputs, out, num, max_tries, prompts, drop_source),
            "personas": str(personas) if personas else None, "top_personas": top_personas,
            "question_types": question_types, "difficulties": difficulties, "query_lengths": query_lengths,
            "query_languages": query_languages, "query_length_tolerance": query_length_tolerance,
            **common.embed_flags(embedder, embed_model, embed_cache),
            **llm.llm_flags(model, base_url, api_key, concurrency, rpm, tpm, temperature, max_tokens, timeout,
                            max_attempts, structured, seed),
        }
        report_and_exit(run(stage_options("querygen", flags, DEFAULTS, config)))
