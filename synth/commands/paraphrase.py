"""`synth paraphrase`: N rewrites per record that keep meaning, style and length but change the wording."""

from __future__ import annotations

from typing import Any

import typer

from synth.commands import llm_options as llm
from synth.commands import synthesis_common as common
from synth.commands.common import report_and_exit, stage_options
from synth.stage import StageSummary
from synth.synthesis.paraphrase import PARAPHRASE_DEFAULTS, ParaphraseStage

DEFAULTS: dict[str, Any] = common.synthesis_defaults(**PARAPHRASE_DEFAULTS)


def run(options: dict[str, Any]) -> StageSummary:
    return common.run_synthesis(ParaphraseStage, options)


def register(app: typer.Typer) -> None:
    @app.command("paraphrase")
    def paraphrase_command(
        inputs: common.Inputs,
        out: common.Out = None,
        num: common.Num = None,
        max_tries: common.MaxTries = None,
        prompts: common.Prompts = None,
        drop_source: common.DropSource = None,
        sentence_change: float | None = common.band(
            "sentence-change", "A one-sentence rewrite changes more than this share (default: 0.30)."),
        paragraph_change: float | None = common.band(
            "paragraph-change", "A paragraph rewrite changes more than this share (default: 0.20)."),
        length_tolerance: float | None = common.band(
            "length-tolerance", "Rewrite length within +-this share of the source (default: 0.15)."),
        model: llm.Model = None, base_url: llm.BaseUrl = None, api_key: llm.ApiKey = None,
        concurrency: llm.Concurrency = None, rpm: llm.Rpm = None, tpm: llm.Tpm = None,
        temperature: llm.Temperature = None, max_tokens: llm.MaxTokens = None, timeout: llm.Timeout = None,
        max_attempts: llm.MaxAttempts = None, structured: llm.Structured = None, seed: llm.Seed = None,
        config: common.Config = None,
    ) -> None:
        """Paraphrase records: retrieval (query, positive), STS (text_a, text_b) and CLS texts."""
        flags = {
            **common.common_flags(inputs, out, num, max_tries, prompts, drop_source),
            "sentence_change": sentence_change, "paragraph_change": paragraph_change,
            "length_tolerance": length_tolerance,
            **llm.llm_flags(model, base_url, api_key, concurrency, rpm, tpm, temperature, max_tokens, timeout,
                            max_attempts, structured, seed),
        }
        report_and_exit(run(stage_options("paraphrase", flags, DEFAULTS, config)))

