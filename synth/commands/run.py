"""`synth run PIPELINE.toml`: every stage of a pipeline file in order; a rerun resumes where the last one stopped."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from synth import storage
from synth.pipeline.plan import load_plan
from synth.pipeline.runner import estimate_plan, run_plan
from synth.summary import exit_code

console = Console(stderr=True)


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run_command(
        pipeline: Path = typer.Argument(..., help="Pipeline file: \\[llm], \\[embedder] and \\[\\[stage]] tables."),
        out: str | None = typer.Option(None, "--out", "-o", help="Run directory, a path or a URI such as "
                                       "s3://bucket/run \\[default: runs/NAME]."),
        first: str | None = typer.Option(None, "--from", help="Start at this stage (earlier outputs must exist)."),
        last: str | None = typer.Option(None, "--to", help="Stop after this stage."),
        executor: str | None = typer.Option(
            None, "--executor", help="Where parts run: local or ray \\[default: \\[executor] kind, else local]."),
        address: str | None = typer.Option(
            None, "--address", help="Ray cluster to join (auto, ray://HOST:10001) \\[default: a Ray on this machine]."),
        estimate: bool = typer.Option(False, "--estimate", help="Print each LLM stage's requests, tokens, cost and "
                                      "time from a sample of its real prompts; send and write nothing."),
        max_cost: float | None = typer.Option(None, "--max-cost", min=0.000001, help="LLM budget of this run in "
                                              "USD, shared by its stages in order; a rerun with more goes on."),
    ) -> None:
        """Run a whole pipeline; finished parts are skipped and answered requests are never sent again."""
        plan = load_plan(pipeline, out)
        if estimate:
            estimate_plan(plan, plan.select(first, last))
            return
        plan.executor = plan.executor.given(executor, address, "the command line")
        summaries = run_plan(plan, plan.select(first, last), max_cost)
        failed = sum(s.failed for s in summaries)
        copy = f", its copy here {plan.run_dir}" if storage.mount_of(plan.run_dir) else ""
        console.print(f"run directory: {storage.display(plan.run_dir)}{copy} (see `synth status {plan.run_dir}`)",
                      highlight=False)
        if failed:
            console.print(f"[red]{failed} rows failed; run the same command again to retry them", highlight=False)
        raise typer.Exit(max((exit_code(s) for s in summaries), default=0))
