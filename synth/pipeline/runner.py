"""Run a plan: write run.toml, start the demo model once if no endpoint is set, run each stage, resume on rerun."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w
from rich.console import Console

from synth.executor import using_executor
from synth.llm import LLMSettings, local_endpoint_if_needed
from synth.llm.accounting import PART_STATS_PREFIX
from synth.llm.estimate import count_rows, scaled
from synth.llm.settings import BATCH_MODES
from synth.pipeline.plan import Plan, PlannedStage
from synth.stage import StageSummary, input_parts
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


@dataclass
class StandIn:
    """What a stage reads in `synth run --estimate`: its input directories when they are made; else the rows an
    earlier stage is estimated to write (`rows`), with the made rows that stage read standing in for them (`dirs`,
    holding `real` rows), since a stage writes rows of the kind and length it reads."""

    dirs: list[Path]
    rows: float
    real: int


def estimate_plan(plan: Plan, stages: list[PlannedStage]) -> list[StageSummary]:
    """`synth run --estimate`: each selected LLM stage's estimate (nothing sent or written). A stage whose input an
    earlier stage has not made yet is estimated on the rows that stage read, scaled to the rows it is estimated to
    write; one whose input neither exists nor has an estimate (an ingest not run yet) is named."""
    selected, made, summaries = {s.name for s in stages}, {}, []
    for stage in plan.stages:
        stand_in = _stand_in(stage, made)
        estimated = "estimate" in stage.options and (stage.needs_llm() or stage.spec.api_embedder(stage.options))
        if stand_in is None:
            if estimated and stage.name in selected:
                console.print(f"{stage.name}: no estimate yet, its input is made by an earlier stage that is not run "
                              "or estimated yet", highlight=False, markup=False)
            continue
        rows_out = stand_in.rows
        if estimated:
            summary = stage.spec.run({**stage.options, "estimate": True, "inputs": [str(d) for d in stand_in.dirs]})
            if stand_in.rows != stand_in.real:
                summary.stats = {**scaled(summary.stats, stand_in.rows / max(1, stand_in.real)),
                                 "estimate_rows": round(stand_in.rows), "estimate_from_earlier_estimate": 1}
                summary.rows_in = round(stand_in.rows)
            rows_out = summary.stats.get("estimate_rows_out", stand_in.rows)
            if stage.name in selected:
                summary.stage = stage.name
                print_summary(summary)
                summaries.append(summary)
        if not stage.out.is_dir():
            made[stage.out.resolve()] = StandIn(stand_in.dirs, rows_out, stand_in.real)
    return summaries


def _stand_in(stage: PlannedStage, made: dict[Path, StandIn]) -> StandIn | None:
    """The stage's inputs as made directories or earlier stages' estimates; None when one is neither."""
    dirs, rows, real = [], 0.0, 0
    for name in stage.options.get("inputs") or []:
        path = Path(name)
        if path.is_dir():
            count = count_rows(input_parts([path]))
            dirs, rows, real = [*dirs, path], rows + count, real + count
        elif path.resolve() in made:
            earlier = made[path.resolve()]
            dirs, rows, real = dirs + earlier.dirs, rows + earlier.rows, real + earlier.real
        else:
            return None
    return StandIn(dirs, rows, real) if dirs else None


def _spent(out: Path) -> float:
    """The LLM cost recorded in a stage's manifest (0 when there is none)."""
    manifest = Path(out) / "_manifest.json"
    if not manifest.is_file():
        return 0.0
    totals = json.loads(manifest.read_text(encoding="utf-8")).get("totals") or {}
    return float((totals.get("stats") or {}).get(PART_STATS_PREFIX + "cost_usd", 0.0))

