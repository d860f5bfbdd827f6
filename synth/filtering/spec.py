"""The filter as a registered stage: rules, embedder and judge options; the run that also writes the dataset card."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synth.card import write_card
from synth.embed import build_embedder
from synth.embed.estimate import CountingEmbedder, embed_stats, with_embedding
from synth.embed.options import EMBED_OPTIONS, api_embedder
from synth.errors import UsageError
from synth.evaluation.audit_spec import AUDIT, AUDIT_OPTIONS, audit, margin_stats
from synth.evaluation.audit_spec import check as check_audit
from synth.executor import stage_lock
from synth.filtering.duplicates import DuplicateFinder
from synth.filtering.judge import JudgeAnswer, JudgePrompt, LLMJudge
from synth.filtering.options import RULE_OPTIONS, check_rule_options, judge_used, rule_used
from synth.filtering.settings import setting_for
from synth.filtering.stage import FilterStage
from synth.llm.estimate import (
    ESTIMATE_OPTIONS,
    estimate_summary,
    prompt_tokens,
    sample_rows,
    token_counter,
    verdict_tokens,
)
from synth.llm.settings import LLM_OPTIONS, LLMSettings
from synth.registry import Inputs, Option, StageSpec, pick
from synth.schema import Task
from synth.stage import StageSummary, run_stage
from synth.store import Manifest, PartRef, read_manifest

AUDIT_SETTINGS = ("target", "max_inconsistency")
"""`synth audit` options the filter's `--audit` takes as `--audit-target` and `--audit-max-inconsistency`."""
AUDIT_FOLDER = "_audit"
"""Where `--audit N` writes the audit's files inside the filter's output."""
AUDIT_ENDPOINTS = "audit_endpoints"
"""The filter manifest's entry for the per-endpoint usage of its latest `--audit` (`synth status` shows it)."""
EMBED_FLAGS = ("embedder", "embed_model", "embed_base_url", "embed_cache")
JUDGE_FLAGS = ("model", "base_url", "api_key", "concurrency", "max_cost")
BATCH_KEYS = ("batch_max_requests", "batch_max_bytes", "batch_poll", "batch_prices")
OPTIONS: tuple[Option, ...] = (
    Option("out", Path, None, "Output directory (the final data).", flags=("--out", "-o")),
    *RULE_OPTIONS,
    *(o.but(config_only=o.key not in EMBED_FLAGS) for o in EMBED_OPTIONS),
    *pick(LLM_OPTIONS, *JUDGE_FLAGS, model={"help": "Judge model."}, base_url={"help": "Judge endpoint."},
          api_key={"help": "Judge API key; never logged or written."},
          concurrency={"help": "Judge requests in flight."}),
    *(o.but(config_only=True) for o in LLM_OPTIONS
      if o.key not in JUDGE_FLAGS and not o.config_only),  # the judge's other engine options, from config files
    *pick(LLM_OPTIONS, "prices", *BATCH_KEYS),  # the judge's cost, and the judge in batch mode (`mode = "batch"`)
    Option("prompts", Path, None, "Folder of templates that replace or add to the built-in judge template.",
           config_only=True),
    Option("audit", int, 0, "Mined negatives per score-ratio bucket that the false-negative audit (`synth audit`) "
           "judges in the kept data, its section going into the card; 0 = off.", min=0),
    *(o.but(key=f"audit_{o.key}", panel=None) for o in AUDIT_OPTIONS if o.key in AUDIT_SETTINGS),
    *(o.but(panel=None) for o in AUDIT_OPTIONS if o.key == "audit_seed"),
    *ESTIMATE_OPTIONS,
)


def audit_options(options: dict[str, Any]) -> dict[str, Any]:
    """`synth audit`'s options from the filter's: `--audit N` per bucket, `--audit-target` and the others."""
    settings = {key: options[f"audit_{key}"] for key in AUDIT_SETTINGS if options.get(f"audit_{key}") is not None}
    return {**AUDIT.defaults(), **options, **settings, "per_bucket": options["audit"]}


def audit_used(options: dict[str, Any]) -> bool:
    return int(options.get("audit") or 0) > 0


def needs_llm(options: dict[str, Any]) -> bool:
    """The judge or the audit asks the LLM."""
    return judge_used(options) or audit_used(options)


def build_stage(options: dict[str, Any]) -> FilterStage:
    """The filter stage with an embedder (for missing scores and embedding dedup) and the judge, when used."""
    from synth.filtering.scoring import LazyEmbedder, score_rows, vector_fn

    embedder = LazyEmbedder(options)

    def scorer(rows: list[dict[str, Any]]) -> list[tuple[float, list[float]]]:
        return score_rows(embedder.get(), rows)

    vectors = vector_fn(embedder.get()) if rule_used(options, "dedup", "embedding") else None
    judge = LLMJudge(options) if judge_used(options) else None
    return FilterStage(options, scorer=scorer, judge=judge, vectors=vectors, embedder=embedder)


def run(options: dict[str, Any]) -> StageSummary:
    """Filter every input part into `out`, then write the dataset card there."""
    if not options.get("inputs"):
        raise UsageError("filter needs at least one input directory")
    if not options.get("out"):
        raise UsageError("filter needs --out DIR")
    options = check_rule_options(options)
    if audit_used(options):
        check_audit(audit_options(options))  # before any filtering: a bad audit setting loses no work
    if options.get("estimate"):
        return estimate(options)
    out = Path(options["out"])
    summary = run_stage(build_stage(options), [Path(p) for p in options["inputs"]], out)
    write_card(out)
    summary.stats.update(distribution_stats(read_manifest(out) or {}))
    if audit_used(options):
        found = audit(out, out / AUDIT_FOLDER, audit_options(options))
        with stage_lock(out):  # the audit's judge is no part of the filter's own `endpoints`: beside them
            Manifest(out, FilterStage.name).set(AUDIT_ENDPOINTS, found["endpoints"])
        summary.stats.update({f"audit: {key}": value for key, value in margin_stats(found).items()})
    return summary


def estimate(options: dict[str, Any]) -> StageSummary:
    """`--estimate`: the judge's requests for the sampled rows it is switched on for (before the other rules drop
    any, so at most what a run sends); with `--audit N`, the audit's requests at most (N per bucket); with the API
    embedder, what `embedded` counts."""
    from synth.evaluation.audit import EDGES, ORDERS

    settings = LLMSettings.from_options({**options, "temperature": 0.0})
    count = token_counter(options.get("tokenizer"))
    rows, sampled = sample_rows([Path(p) for p in options["inputs"]])
    judged = [row for _, part_rows in sampled for row in part_rows if judge_used(options)
              and row["task"] == Task.RETRIEVAL and setting_for(options["judge"], row["task"], row["origin"])]
    prompt = JudgePrompt(options) if judged else None
    tokens = sum(prompt_tokens(prompt.render(row), count) for row in judged) if prompt else 0
    at_most = int(options["audit"]) * (len(EDGES) + 1) * len(ORDERS)
    audit = {"estimate_audit_requests_at_most": at_most} if audit_used(options) else {}
    sampled_rows = sum(len(r) for _, r in sampled)
    summary = estimate_summary("filter", Path(options["out"]), rows, sampled_rows, len(judged), tokens,
                               len(judged) * verdict_tokens(JudgeAnswer, count), settings, extra=audit)
    if api_embedder(options):
        embedder = embedded(options, sampled, CountingEmbedder(build_embedder(options), count))
        sent = embedder.take(rows / sampled_rows if sampled_rows else 0.0)
        summary.stats = with_embedding(summary.stats, embed_stats(sent, embedder))
    return summary


def embedded(options: dict[str, Any], sampled: list[tuple[PartRef, list[dict[str, Any]]]],
             embedder: CountingEmbedder) -> CountingEmbedder:
    """The sampled rows embedded into `embedder` as `FilterStage.prepare` embeds a run's: part by part the scores
    the rows lack and the rules use (queries, then passages and negatives), then part by part the texts of the
    records that embedding dedup compares. Exact for the sampled rows: every text is embedded before any record is
    dropped. The caller scales the calls with the rows (exact when every part is sampled whole)."""
    from synth.filtering.scoring import score_rows, vector_fn

    stage = FilterStage(options, scorer=lambda rows: score_rows(embedder, rows))
    for _, rows in sampled:
        stage.part_scores(rows)
    dedup = DuplicateFinder(options, vector_fn(embedder))
    for _, rows in sampled:
        dedup.prefetch(rows)
    return embedder


def distribution_stats(manifest: dict[str, Any]) -> dict[str, float]:
    """Median and count of positive and negative scores before and after the filter, for the summary."""
    stats: dict[str, float] = {}
    for kind, stages in manifest.get("score_distributions", {}).items():
        for stage, summary in stages.items():
            if summary.get("count"):
                stats[f"{kind} scores {stage}: count"] = summary["count"]
                stats[f"{kind} scores {stage}: median"] = summary["p50"]
    return stats


FILTER = StageSpec(
    "filter", "Drop low-scoring pairs, false negatives, duplicates, over-long and wrong-language records.",
    Inputs("Stage output directories to filter."), OPTIONS, run, needs_llm=needs_llm,
    api_embedder=api_embedder, out_folder="final")
