"""Run a plan: write run.toml, start the demo model once if no endpoint is set, run each stage, resume on rerun."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import tomli_w
from rich.console import Console

from synth.executor import using_executor
from synth.llm import LLMSettings, local_endpoint_if_needed
from synth.llm.accounting import PART_STATS_PREFIX
from synth.llm.settings import BATCH_MODES
from synth.pipeline.plan import Plan, PlannedStage
from synth.stage import StageSummary
from synth.store import atomic_write_bytes
from synth.summary import print_summary

RUN_FILE = "run.toml"
console = Console(stderr=True)


def write_run_file(plan: Plan) -> None:
    """`RUN/run.toml`: the resolved configuration of every stage (no secrets) and its hash."""
    document = {"config_hash": plan.hash(), **plan.config()}
    atomic_write_bytes(plan.run_dir / RUN_FILE, tomli_w.dumps(document).encode("utf-8"))


class SharedEndpoint:
    """The demo model for LLM stages without an endpoint: started when the first such stage comes, once per run."""

    def __init__(self, stack: contextlib.ExitStack):
        self.stack = stack
        self.options: dict[str, Any] | None = None

    def for_stage(self, stage: PlannedStage) -> dict[str, Any]:
        """The stage's options, pointed at the shared demo model when it needs an LLM and names no endpoint."""
        options = dict(stage.options)
        settings = LLMSettings.from_options(options)
        if not stage.needs_llm() or settings.base_url or settings.mode in BATCH_MODES:  # batch: no demo model
            return options
        if self.options is None:
            live = self.stack.enter_context(local_endpoint_if_needed(LLMSettings.from_options(options)))
            self.options = {"base_url": live.base_url, "model": live.model, "concurrency": live.concurrency}
        return {**options, **self.options}


def run_plan(plan: Plan, stages: list[PlannedStage], max_cost: float | None = None) -> list[StageSummary]:
    """Run `stages` in order; each skips its finished parts, so a rerun resumes where the last run stopped.

    `max_cost` is the run's LLM budget in USD: each LLM stage gets what the earlier ones left of it."""
    plan.run_dir.mkdir(parents=True, exist_ok=True)
    write_run_file(plan)
    summaries = []
    with contextlib.ExitStack() as stack:
        stack.enter_context(using_executor(plan.executor))
        endpoint = SharedEndpoint(stack)
        for stage in stages:
            console.rule(f"[bold]{stage.name}[/bold] ({stage.spec.name})")
            options = endpoint.for_stage(stage)
            budgeted = max_cost is not None and "max_cost" in options
            before = _spent(stage.out) if budgeted else 0.0
            if budgeted:
                options["max_cost"] = max(max_cost, 1e-9)
            summary = stage.spec.execute(options)
            if budgeted:
                max_cost -= _spent(stage.out) - before
            summary.stage = stage.name
            print_summary(summary)
            summaries.append(summary)
    return summaries


def estimate_plan(plan: Plan, stages: list[PlannedStage]) -> list[StageSummary]:
    """`synth run --estimate`: each LLM stage's estimate (nothing sent or written); a stage whose input is not made
    yet is named, since its rows depend on the earlier stages."""
    summaries = []
    for stage in stages:
        if "estimate" not in stage.options:
            continue
        missing = [p for p in stage.options.get("inputs") or [] if not Path(p).is_dir()]
        if missing:
            console.print(f"{stage.name}: no estimate yet, its input {missing[0]} is made by an earlier stage",
                          highlight=False, markup=False)
            continue
        summary = stage.spec.run({**stage.options, "estimate": True})
        summary.stage = stage.name
        print_summary(summary)
        summaries.append(summary)
    return summaries


def _spent(out: Path) -> float:
    """The LLM cost recorded in a stage's manifest (0 when there is none)."""
    manifest = Path(out) / "_manifest.json"
    if not manifest.is_file():
        return 0.0
    totals = json.loads(manifest.read_text(encoding="utf-8")).get("totals") or {}
    return float((totals.get("stats") or {}).get(PART_STATS_PREFIX + "cost_usd", 0.0))

