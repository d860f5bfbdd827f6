"""`synth augment`: N topic-shifted (query, positive, hard negative) triples per retrieval record, new CLS examples."""

from __future__ import annotations

from typing import Any

import typer

from synth.commands import llm_options as llm
from synth.commands import synthesis_common as common
from synth.commands.common import report_and_exit, stage_options
from synth.stage import StageSummary
from synth.synthesis.augment import AUGMENT_DEFAULTS, AugmentStage

DEFAULTS: dict[str, Any] = common.synthesis_defaults(**AUGMENT_DEFAULTS)


def run(options: dict[str, Any]) -> StageSummary:
    return common.run_synthesis(AugmentStage, options)


def register(app: typer.Typer) -> None:
    @app.command("augment")
    def augment_command(
        inputs: common.Inputs,
        out: common.Out = None,
        num: common.Num = None,
        max_tries: common.MaxTries = None,
        prompts: common.Prompts = None,
        drop_source: common.DropSource = None,
        length_tolerance: float | None = common.band(
            "length-tolerance", "New query/passages within +-this share of the originals (default: 0.20)."),
        min_change: float | None = common.band(
            "min-change", "The new query changes more than this share of the old one (default: 0.30)."),
        max_topic_overlap: float | None = common.band(
            "max-topic-overlap", "At most this share of content words shared with the source (default: 0.50)."),
        min_topic_similarity: float | None = common.band(
            "min-topic-similarity", "With an embedder: cosine to the source at least this (default: 0.30)."),
        max_topic_similarity: float | None = common.band(
            "max-topic-similarity", "With an embedder: cosine to the source at most this (default: 0.90)."),
        embedder: common.Embedder = None, embed_model: common.EmbedModel = None, embed_cache: common.EmbedCache = None,
        model: llm.Model = None, base_url: llm.BaseUrl = None, api_key: llm.ApiKey = None,
        concurrency: llm.Concurrency = None, rpm: llm.Rpm = None, tpm: llm.Tpm = None,
        temperature: llm.Temperature = None, max_tokens: llm.MaxTokens = None, timeout: llm.Timeout = None,
        max_attempts: llm.MaxAttempts = None, structured: llm.Structured = None, seed: llm.Seed = None,
        config: common.Config = None,
    ) -> None:
        """Extend records to neighbouring topics: retrieval triples and new CLS examples (STS passes through)."""
        flags = {
            **common.common_flags(inputs, out, num, max_tries, prompts, drop_source),
            "length_tolerance": length_tolerance, "min_change": min_change, "max_topic_overlap": max_topic_overlap,
            "min_topic_similarity": min_topic_similarity, "max_topic_similarity": max_topic_similarity,
            **common.embed_flags(embedder, embed_model, embed_cache),
            **llm.llm_flags(model, base_url, api_key, concurrency, rpm, tpm, temperature, max_tokens, timeout,
                            max_attempts, structured, seed),
        }
        report_and_exit(run(stage_options("augment", flags, DEFAULTS, config)))
