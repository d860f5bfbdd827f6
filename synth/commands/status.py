"""`synth status RUN_DIR`: per stage, parts done, rows, rejects per reason, tokens, cost, failures, next action."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from synth.pipeline.status import StageStatus, run_status

console = Console()
ENDPOINT_COLUMNS = ("stage", "endpoint", "requests", "failures", "taken out", "latency ms p50 / p90 / p99", "cost")
COLUMNS = ("stage", "parts done/total", "rows in -> out", "rejects", "LLM usage", "failed", "a rerun would")


def rejects_text(status: StageStatus) -> str:
    ordered = sorted(status.rejects_by_rule.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{rule} {count:,}" for rule, count in ordered) or "-"


def usage_text(status: StageStatus) -> str:
    if not status.usage.get("requests") and not status.usage.get("prompt_tokens"):
        return "-"
    tokens = int(status.usage["prompt_tokens"] + status.usage["completion_tokens"])
    text = f"{int(status.usage['requests']):,} req, {tokens:,} tok, ${status.usage['cost_usd']:.4f}"
    return f"{text} ({status.batches})" if status.batches else text


def register(app: typer.Typer) -> None:
    @app.command("status")
    def status_command(run_dir: Path = typer.Argument(..., help="A run directory made by `synth run`.")) -> None:
        """Explain a run: what each stage finished, dropped and cost, and what a rerun would do."""
        run, stages = run_status(run_dir)
        table = Table(title=f"{run_dir} (config {run.get('config_hash', '?')})")
        for column in COLUMNS:
            table.add_column(column, overflow="fold")
        for s in stages:
            total = "?" if s.parts_total is None else str(s.parts_total)
            rows = f"{s.rows_in:,} -> {s.rows_out:,}" if s.started else "-"
            table.add_row(s.name, f"{s.parts_done}/{total}", rows, rejects_text(s), usage_text(s),
                          str(s.failed) if s.failed else "-", s.rerun)
        console.print(table)
        endpoints = [(name, url, e) for s in stages
                     for name, used in ((s.name, s.endpoints), (f"{s.name} (audit)", s.audit_endpoints))
                     for url, e in used.items()]
        if endpoints:
            console.print(endpoint_table(endpoints))


def endpoint_table(endpoints: list[tuple[str, str, dict[str, Any]]]) -> Table:
    """Per stage and endpoint of its latest run: how many requests it took, failed, how fast, at what cost."""
    table = Table(title="LLM endpoints (latest run of each stage)")
    for column in ENDPOINT_COLUMNS:
        table.add_column(column, overflow="fold")
    for stage, url, e in endpoints:
        table.add_row(stage, url, f"{e['requests']:,}", f"{e['failures']:,}", str(e["taken_out"]),
                      f"{e['latency_ms_p50']:g} / {e['latency_ms_p90']:g} / {e['latency_ms_p99']:g}",
                      f"${e['cost_usd']:.4f}")
    return table
