"""`synth audit DIR`: the false-negative audit as a stage, its `audit.json`, its samples and its card section."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from synth.card import CARD, set_section
from synth.errors import UsageError
from synth.evaluation.audit import ORDERS, AuditAnswer, AuditJudge, AuditPrompt, Population, collect, draw, estimate
from synth.evaluation.report import bar
from synth.executor.lock import stage_lock
from synth.llm import LLMSettings, local_endpoint_if_needed
from synth.llm.accounting import as_part_stats
from synth.llm.estimate import ESTIMATE_OPTIONS, estimate_summary, prompt_tokens, token_counter, verdict_tokens
from synth.llm.journal import journal_path
from synth.llm.settings import LLM_OPTIONS
from synth.registry import Inputs, Option, StageSpec, always
from synth.stage import StageSummary
from synth.store import atomic_write_bytes, list_parts

RESULT = "audit.json"
SAMPLES = "audit_samples.jsonl"
SECTION = "False-negative audit"
PANEL = "Audit"
AUDIT_OPTIONS: tuple[Option, ...] = (
    Option("per_bucket", int, 40, "Negatives judged per score-ratio bucket.", min=1, panel=PANEL),
    Option("target", float, 0.05, "Largest acceptable estimated false-negative share; the suggested relative "
           "margin is the loosest that keeps the estimate at or under it.", min=0.0, panel=PANEL),
    Option("max_inconsistency", float, 0.2, "Largest share of sampled negatives on which the judge may change its "
           "verdict when the two passages swap places; above it the judge is reported unreliable and no margin is "
           "suggested.", min=0.0, panel=PANEL),
    Option("audit_seed", int, 0, "Seed of the sample.", panel=PANEL),
    Option("origins", list[str], ["mined"], "Negative origins audited (repeatable).", panel=PANEL),
)
OPTIONS: tuple[Option, ...] = (
    Option("out", Path, None, "Where to write audit.json, audit_samples.jsonl and README.md.", flags=("--out", "-o"),
           default_text="audit/ beside DIR"),
    *AUDIT_OPTIONS,
    *LLM_OPTIONS,
    Option("prompts", Path, None, "Folder of templates that replace or add to the built-in audit template.",
           config_only=True),
    *(o.but(panel=PANEL) for o in ESTIMATE_OPTIONS),
)


def margin_text(margin: float | None) -> str:
    return "none" if margin is None else f"{margin:g}"


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def section_lines(result: dict[str, Any]) -> list[str]:
    """The card's Markdown: per bucket the estimated share with its interval and a bar, then the margins."""
    rows = ["| negative / positive score | negatives | judged | false negatives | share | 95% interval | share | "
            "flipped with the order |", "| --- | ---: | ---: | ---: | ---: | --- | --- | ---: |"]
    for b in result["buckets"]:
        chart = f"`{bar(b['share'])}`" if b["share"] is not None else ""
        interval = f"{percent(b['low'])}-{percent(b['high'])}" if b["judged"] else "-"
        rows.append(f"| {b['bucket']} | {b['negatives']:,} | {b['judged']} | {b['false_negatives']} | "
                    f"{percent(b['share'])} | {interval} | {chart} | {b['flipped']} |")
    margins = ["| relative margin | negatives kept | estimated false-negative share | upper 95% |",
               "| --- | ---: | ---: | ---: |"]
    margins += [f"| {margin_text(m['relative_margin'])} | {m['negatives_kept']:,} | {percent(m['share'])} | "
                f"{percent(m['high'])} |" for m in result["margins"]]
    if not result["judge_reliable"]:
        suggested = (f"none, because the judge is unreliable: its verdict changed with the order of the passages on "
                     f"{percent(result['position_inconsistency'])} of the negatives (more than "
                     f"{percent(result['max_inconsistency'])}), so it answers by position rather than by content")
    elif result["target_met"]:
        suggested = (f"the loosest relative margin whose estimated share is at most {percent(result['target'])}: "
                     f"**{margin_text(result['suggested_relative_margin'])}**")
    else:
        suggested = f"no margin the audit can judge keeps the estimate at or under {percent(result['target'])}"
    return [
        f"An LLM judge read {result['judged']} mined negatives of `{result['source']}`, sampled per bucket of "
        f"their score ratio to the positive (seed {result['settings']['audit_seed']}), each beside its positive "
        "twice (positive first, then negative first), and said which passage answers the query better. A negative "
        "counts as false when both readings say it answers as well as the positive. The judge's verdict changed "
        f"with the order on {result['flipped']} of {result['judged']} negatives (position inconsistency "
        f"{percent(result['position_inconsistency'])}).",
        "", *rows, "", *margins, "",
        f"Suggested: {suggested}. Bars: share of false negatives, 0 to 1. Numbers from `audit.json`.",
    ]


def write_cards(result: dict[str, Any], source: Path, out: Path) -> None:
    """The section in OUT/README.md, and in the audited directory's card when it is a final directory with one."""
    cards = [out / CARD]
    if (source / CARD).is_file() and source.resolve() != out.resolve():
        cards.append(source / CARD)
    for card in cards:
        set_section(card, SECTION, section_lines(result))


def audit(source: Path, out: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Sample, judge (through the engine and its journal in OUT) and estimate; writes OUT's files and the card."""
    population: Population = collect(source, list(options["origins"]))
    sample = draw(population, int(options["per_bucket"]), int(options["audit_seed"]))
    out.mkdir(parents=True, exist_ok=True)
    with stage_lock(out), local_endpoint_if_needed(LLMSettings.from_options({**options, "temperature": 0.0})) as live:
        judge = AuditJudge(options, live, journal_path(out))
        try:
            judge(sample)
            usage, endpoints = judge.usage(), judge.engine.endpoint_stats()
        finally:
            judge.close()
        settings = {k: options[k] for k in ("per_bucket", "target", "max_inconsistency", "audit_seed", "origins")}
        result = {"source": str(source), "settings": settings, "unscored_negatives": population.unscored,
                  **estimate(population, sample, float(options["target"]), float(options["max_inconsistency"])),
                  "llm": usage, "endpoints": endpoints}
        atomic_write_bytes(out / RESULT, (json.dumps(result, indent=1, ensure_ascii=False) + "\n").encode())
        atomic_write_bytes(out / SAMPLES, "".join(json.dumps(asdict(s), ensure_ascii=False) + "\n"
                                                  for s in sample).encode())
        write_cards(result, source, out)
    return result


def margin_stats(result: dict[str, Any]) -> dict[str, float]:
    """The suggestion as summary numbers."""
    margin = result["suggested_relative_margin"]
    if not result["judge_reliable"]:
        return {"judge unreliable: no margin suggested": 1}
    if not result["target_met"]:
        return {"no relative margin meets the target": 1}
    return {"no relative margin needed": 1} if margin is None else {"suggested relative margin": margin}


def check(options: dict[str, Any]) -> None:
    if int(options["per_bucket"]) < 1:
        raise UsageError(f"audit: per_bucket must be at least 1, got {options['per_bucket']}")
    if not 0.0 <= float(options["target"]) < 1.0:
        raise UsageError(f"audit: target must be in [0, 1), got {options['target']}")
    if not 0.0 <= float(options["max_inconsistency"]) <= 1.0:
        raise UsageError(f"audit: max_inconsistency must be in [0, 1], got {options['max_inconsistency']}")


def run(options: dict[str, Any]) -> StageSummary:
    source = AUDIT.input_dir(options)
    if not list_parts(source):
        raise UsageError(f"audit: no stage parts in {source} (give a mine or filter output directory)")
    check(options)
    out = Path(options["out"]) if options.get("out") else source.resolve().parent / "audit"
    if options.get("estimate"):
        return estimate_audit(source, out, options)
    result = audit(source, out, options)
    summary = StageSummary("audit", out, processed=1)
    summary.stats = {f"false-negative share {b['bucket']}": round(b["share"], 4)
                     for b in result["buckets"] if b["share"] is not None}
    if result["position_inconsistency"] is not None:
        summary.stats["judge position inconsistency"] = round(result["position_inconsistency"], 4)
    summary.stats.update(margin_stats(result))
    summary.stats.update({k: v for k, v in as_part_stats(result["llm"]).items() if v})
    return summary


def estimate_audit(source: Path, out: Path, options: dict[str, Any]) -> StageSummary:
    """`--estimate`: the very sample a run judges, its prompts rendered and counted; nothing sent or written."""
    sample = draw(collect(source, list(options["origins"])), int(options["per_bucket"]), int(options["audit_seed"]))
    count, prompt = token_counter(options.get("tokenizer")), AuditPrompt(options)
    tokens = sum(prompt_tokens(text, count) for s in sample for text in prompt.renders(s))
    return estimate_summary("audit", out, len(sample), len(sample), len(ORDERS) * len(sample), tokens,
                            len(ORDERS) * len(sample) * verdict_tokens(AuditAnswer, count),
                            LLMSettings.from_options({**options, "temperature": 0.0}))


AUDIT = StageSpec(
    "audit", "Estimate the share of mined negatives that are false ones, by closeness to the positive, with an "
    "LLM judge; suggest the relative margin.",
    Inputs("A mine or filter output directory.", name="input_dir", many=False), OPTIONS, run, needs_llm=always,
    out_folder="audit")
