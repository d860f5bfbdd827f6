"""`synth llm-negatives`: N LLM-written hard negatives per (query, positive), appended with origin `llm`."""

from __future__ import annotations

from typing import Any

import typer

from synth.commands import llm_options as llm
from synth.commands import synthesis_common as common
from synth.commands.common import report_and_exit, stage_options
from synth.stage import StageSummary
from synth.synthesis.negatives import NEGATIVES_DEFAULTS, NegativesStage

DEFAULTS: dict[str, Any] = common.synthesis_defaults(**NEGATIVES_DEFAULTS)


def run(options: dict[str, Any]) -> StageSummary:
    return common.run_synthesis(NegativesStage, options)


def register(app: typer.Typer) -> None:
    @app.command("llm-negatives")
    def llm_negatives_command(
        inputs: common.Inputs,
        out: common.Out = None,
        num: common.Num = None,
        max_tries: common.MaxTries = None,
        prompts: common.Prompts = None,
        length_tolerance: float | None = common.band(
            "length-tolerance", "Negative length within +-this share of the positive (default: 0.20)."),
        min_change: float | None = common.band(
            "min-change", "A negative changes more than this share of the positive (default: 0.20)."),
        model: llm.Model = None, base_url: llm.BaseUrl = None, api_key: llm.ApiKey = None,
        concurrency: llm.Concurrency = None, rpm: llm.Rpm = None, tpm: llm.Tpm = None,
        temperature: llm.Temperature = None, max_tokens: llm.MaxTokens = None, timeout: llm.Timeout = None,
        max_attempts: llm.MaxAttempts = None, structured: llm.Structured = None, seed: llm.Seed = None,
        config: common.Config = None,
    ) -> None:
        """Write hard negatives that deviate in meaning, add irrelevant detail or answer another aspect."""
        flags = {
            **common.common_flags(inputs, out, num, max_tries, prompts, None),
            "length_tolerance": length_tolerance, "min_change": min_change,
            **llm.llm_flags(model, base_url, api_key, concurrency, rpm, tpm, temperature, max_tokens, timeout,
                            max_attempts, structured, seed),
        }
        report_and_exit(run(stage_options("llm-negatives", flags, DEFAULTS, config)))
