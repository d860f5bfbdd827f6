"""The end-of-stage summary a user reads: rows, rejects per rule, stats, and what was skipped."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from synth.stage import StageSummary

console = Console(stderr=True)


def print_summary(summary: StageSummary) -> None:
    table = Table(title=f"{summary.stage} -> {summary.out}", show_header=False)
    table.add_row("parts processed / skipped", f"{summary.processed} / {summary.skipped}")
    table.add_row("rows in / out", f"{summary.rows_in:,} / {summary.rows_out:,}")
    table.add_row("rejected", f"{summary.rejected:,}")
    for rule, count in sorted(summary.rejects_by_rule.items(), key=lambda kv: -kv[1]):
        table.add_row(f"  {rule}", f"{count:,}")
    if summary.failed:
        table.add_row("[red]failed (retried next run)", f"{summary.failed:,}")
    for key, value in sorted(summary.stats.items()):
        table.add_row(key, f"{value:,.4g}" if isinstance(value, float) else f"{value:,}")
    console.print(table)


def exit_code(summary: StageSummary) -> int:
    """0 on success (rejects are not failures), 1 when rows failed."""
    return 1 if summary.failed else 0
