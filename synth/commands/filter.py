"""`synth filter`: keep what is good, say why the rest was dropped, and write the dataset card."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from synth.card import write_card
from synth.commands.common import report_and_exit, stage_options
from synth.embed import EMBED_DEFAULTS
from synth.errors import UsageError
from synth.filtering.judge import LLMJudge
from synth.filtering.options import RULE_DEFAULTS, check_rule_options
from synth.filtering.settings import parse_setting_flags, setting_for
from synth.filtering.stage import FilterStage
from synth.lineage import read_manifest
from synth.llm.settings import LLM_OPTION_DEFAULTS
from synth.stage import StageSummary, run_stage

DEFAULTS: dict[str, Any] = {
    "inputs": [],
    "out": None,
    **RULE_DEFAULTS,
    **EMBED_DEFAULTS,
    **{k: v for k, v in LLM_OPTION_DEFAULTS.items() if k not in ("extra_headers", "extra_body", "prices")},
    "prompts": None,
}


def rule_used(options: dict[str, Any], name: str, value: Any) -> bool:
    """Whether any per-task/per-origin entry of a setting equals `value`."""
    setting = options[name]
    entries = setting.values() if isinstance(setting, dict) else [setting]
    return any(setting_for(entry, "", "") == value for entry in entries)


def build_stage(options: dict[str, Any]) -> FilterStage:
    """The filter stage with an embedder (for missing scores and embedding dedup) and the judge, when used."""
    from synth.embed import build_embedder
    from synth.filtering.scoring import score_rows, vector_fn

    embedder = None

    def scorer(rows: list[dict[str, Any]]) -> list[tuple[float, list[float]]]:
        nonlocal embedder
        embedder = embedder or build_embedder(options)
        return score_rows(embedder, rows)

    vectors = None
    if rule_used(options, "dedup", "embedding"):
        embedder = build_embedder(options)
        vectors = vector_fn(embedder)
    judge = LLMJudge(options) if rule_used(options, "judge", True) else None
    return FilterStage(options, scorer=scorer, judge=judge, vectors=vectors)


def run(options: dict[str, Any]) -> StageSummary:
    """Filter every input part into `out`, then write the dataset card there."""
    if not options.get("inputs"):
        raise UsageError("filter needs at least one input directory")
    if not options.get("out"):
        raise UsageError("filter needs --out DIR")
    options = check_rule_options(options)
    out = Path(options["out"])
    summary = run_stage(build_stage(options), [Path(p) for p in options["inputs"]], out)
    write_card(out)
    summary.stats.update(distribution_stats(read_manifest(out) or {}))
    return summary


def distribution_stats(manifest: dict[str, Any]) -> dict[str, float]:
    """Median and count of positive and negative scores before and after the filter, for the summary."""
    stats: dict[str, float] = {}
    for kind, stages in manifest.get("score_distributions", {}).items():
        for stage, summary in stages.items():
            if summary.get("count"):
                stats[f"{kind} scores {stage}: count"] = summary["count"]
                stats[f"{kind} scores {stage}: median"] = summary["p50"]
    return stats


def rule_flag(help_text: str) -> Any:
    """A repeatable rule option: VALUE for every record, or KEY=VALUE for one task and/or origin."""
    return typer.Option(None, help=f"{help_text} Repeatable: VALUE, or TASK=, ORIGIN=, TASK.ORIGIN=VALUE.")


def register(app: typer.Typer) -> None:
    @app.command("filter")
    def filter_command(
        inputs: list[Path] = typer.Argument(..., help="Stage output directories to filter."),
        out: Path | None = typer.Option(None, "--out", "-o", help="Output directory (the final data)."),
        min_score: list[str] = rule_flag("Query-positive cosine floor, 0.7 or p20."),
        false_negative_margin: list[str] = rule_flag("Drop negatives above positive + this."),
        relative_margin: list[str] = rule_flag("LLM negatives must score below positive x (1 - this), as in mine."),
        dedup: list[str] = rule_flag("exact, minhash, embedding or off."),
        dedup_on: list[str] = rule_flag("query,pair (what to compare)."),
        near_dup_threshold: float | None = typer.Option(None, help="MinHash Jaccard of near duplicates."),
        embedding_dup_threshold: float | None = typer.Option(None, help="Cosine at which texts are near duplicates."),
        max_query_tokens: list[str] = rule_flag("Longest query, in estimated tokens."),
        max_passage_tokens: list[str] = rule_flag("Longest other text, in estimated tokens."),
        check_lang: list[str] = rule_flag("true/false: text script must fit `lang`."),
        judge: list[str] = rule_flag("true/false: ask the LLM whether the positive answers."),
        embedder: str | None = typer.Option(None, help="Embedder for missing scores: local or api."),
        embed_model: str | None = typer.Option(None, help="Embedding model (default: the shipped MiniLM)."),
        embed_base_url: str | None = typer.Option(None, help="Endpoint of an API embedder."),
        embed_cache: Path | None = typer.Option(None, help="Embedding cache directory."),
        model: str | None = typer.Option(None, help="Judge model."),
        base_url: str | None = typer.Option(None, help="Judge endpoint (default OPENAI_BASE_URL)."),
        api_key: str | None = typer.Option(None, help="Judge API key (default OPENAI_API_KEY)."),
        concurrency: int | None = typer.Option(None, help="Judge requests in flight."),
        config: Path | None = typer.Option(None, "--config", help="TOML file; its [filter] table gives options."),
    ) -> None:
        """Drop low-scoring pairs, false negatives, duplicates, over-long and wrong-language records."""
        settings = {name: parse_setting_flags(value, f"--{name.replace('_', '-')}") for name, value in {
            "min_score": min_score, "false_negative_margin": false_negative_margin,
            "relative_margin": relative_margin, "dedup": dedup, "dedup_on": dedup_on,
            "max_query_tokens": max_query_tokens, "max_passage_tokens": max_passage_tokens,
            "check_lang": check_lang, "judge": judge,
        }.items()}
        flags = {
            "inputs": [str(p) for p in inputs], "out": str(out) if out else None, **settings,
            "near_dup_threshold": near_dup_threshold, "embedding_dup_threshold": embedding_dup_threshold,
            "embedder": embedder, "embed_model": embed_model, "embed_base_url": embed_base_url,
            "embed_cache": str(embed_cache) if embed_cache else None,
            "model": model, "base_url": base_url, "api_key": api_key, "concurrency": concurrency,
        }
        report_and_exit(run(stage_options("filter", flags, DEFAULTS, config)))
