"""Run a plan: write run.toml, start the demo model once if no endpoint is set, run each stage, resume on rerun."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import tomli_w
from rich.console import Console

from synth.llm import LLMSettings, local_endpoint_if_needed
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


@contextlib.contextmanager
def shared_endpoint(stages: list[PlannedStage]) -> Iterator[dict[str, Any]]:
    """LLM options to give every LLM stage without an endpoint: the demo model, started once for the run."""
    waiting = [s for s in stages if s.needs_llm() and not LLMSettings.from_options(s.options).base_url]
    if not waiting:
        yield {}
        return
    with local_endpoint_if_needed(LLMSettings.from_options(waiting[0].options)) as live:
        yield {"base_url": live.base_url, "model": live.model, "concurrency": live.concurrency}


def run_plan(plan: Plan, stages: list[PlannedStage]) -> list[StageSummary]:
    """Run `stages` in order; each skips its finished parts, so a rerun resumes where the last run stopped."""
    plan.run_dir.mkdir(parents=True, exist_ok=True)
    write_run_file(plan)
    summaries = []
    with shared_endpoint(stages) as endpoint:
        for stage in stages:
            console.rule(f"[bold]{stage.name}[/bold] ({stage.use.replace('_', '-')})")
            options = dict(stage.options)
            if endpoint and stage.needs_llm() and not LLMSettings.from_options(options).base_url:
                options.update(endpoint)
            summary = stage.module.run(options)
            summary.stage = stage.name
            print_summary(summary)
            summaries.append(summary)
    return summaries

