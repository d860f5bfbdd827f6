"""The LLM flags every LLM stage command shares, as typer `Annotated` aliases, and their defaults.

A stage command writes `model: llm_options.Model = None, base_url: llm_options.BaseUrl = None, ...` and puts
`**LLM_DEFAULTS` in its DEFAULTS; `LLMSettings.from_options(options)` then reads them.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from synth.llm.settings import LLM_OPTION_DEFAULTS, STRUCTURED_MODES

PANEL = "LLM endpoint"
LLM_DEFAULTS: dict[str, Any] = dict(LLM_OPTION_DEFAULTS)
"""Defaults of every LLM option (including config-only `extra_headers`, `extra_body`, `prices`)."""

Model = Annotated[str | None, typer.Option(
    "--model", help=escape("Model name; default: the first model the endpoint lists."), rich_help_panel=PANEL)]
BaseUrl = Annotated[str | None, typer.Option(
    "--base-url", help=escape("OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 [default: $OPENAI_BASE_URL; "
    "with neither, the bundled demo model when synth[llm-local] is installed]"), rich_help_panel=PANEL)]
ApiKey = Annotated[str | None, typer.Option(
    "--api-key", help=escape("API key [default: $OPENAI_API_KEY]. Never logged or written."), show_default=False,
    rich_help_panel=PANEL)]
Concurrency = Annotated[int | None, typer.Option(
    "--concurrency", min=1, help=escape(f"Requests in flight [default: {LLM_DEFAULTS['concurrency']}]"),
    rich_help_panel=PANEL)]
Rpm = Annotated[float | None, typer.Option(
    "--rpm", min=0.001,
    help=escape("Client-side requests-per-minute budget [default: none; follows the server's headers]"),
    rich_help_panel=PANEL)]
Tpm = Annotated[float | None, typer.Option(
    "--tpm", min=0.001, help=escape("Client-side tokens-per-minute budget [default: none]"), rich_help_panel=PANEL)]
Temperature = Annotated[float | None, typer.Option(
    "--temperature", min=0.0, help=escape(f"Sampling temperature [default: {LLM_DEFAULTS['temperature']}]"),
    rich_help_panel=PANEL)]
MaxTokens = Annotated[int | None, typer.Option(
    "--max-tokens", min=1, help=escape(f"Max tokens per answer [default: {LLM_DEFAULTS['max_tokens']}]"),
    rich_help_panel=PANEL)]
Timeout = Annotated[float | None, typer.Option(
    "--timeout", min=0.001, help=escape(f"Seconds per request attempt [default: {LLM_DEFAULTS['timeout']:g}]"),
    rich_help_panel=PANEL)]
MaxAttempts = Annotated[int | None, typer.Option(
    "--max-attempts", min=1,
    help=escape(f"Attempts per request on transient faults [default: {LLM_DEFAULTS['max_attempts']}]"),
    rich_help_panel=PANEL)]
Structured = Annotated[str | None, typer.Option(
    "--structured", help=escape(f"How to ask for JSON: {' | '.join(STRUCTURED_MODES)} [default: auto]"),
    rich_help_panel=PANEL)]
Seed = Annotated[int | None, typer.Option(
    "--seed", help=escape("Seed sent to the model and used for sampling [default: none]"), rich_help_panel=PANEL)]


def llm_flags(
    model: str | None, base_url: str | None, api_key: str | None, concurrency: int | None, rpm: float | None,
    tpm: float | None, temperature: float | None, max_tokens: int | None, timeout: float | None,
    max_attempts: int | None, structured: str | None, seed: int | None,
) -> dict[str, Any]:
    """The shared LLM flags as an options dict (None = not given), ready for `stage_options`."""
    return {
        "model": model, "base_url": base_url, "api_key": api_key, "concurrency": concurrency, "rpm": rpm,
        "tpm": tpm, "temperature": temperature, "max_tokens": max_tokens, "timeout": timeout,
        "max_attempts": max_attempts, "structured": structured, "seed": seed,
    }
