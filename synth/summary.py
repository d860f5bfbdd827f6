"""The end-of-stage summary a user reads: rows, rejects per rule, stats, and what was skipped."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from synth.llm.accounting import PART_STATS_PREFIX
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
    if llm_answered_nothing(summary):
        table.add_row("[red]LLM answers", "[red]none: every request failed (see the first error above)")
    for key, value in sorted(summary.stats.items()):
        table.add_row(key, f"{value:,.4g}" if isinstance(value, float) else f"{value:,}")
    console.print(table)


def llm_answered_nothing(summary: StageSummary) -> bool:
    """A stage that asked an LLM and got not one answer, from the server or the journal: a failed stage."""
    stats = summary.stats
    asked = stats.get(PART_STATS_PREFIX + "requests", 0) + stats.get(PART_STATS_PREFIX + "unreachable", 0)
    answers = stats.get(PART_STATS_PREFIX + "answered", 0) + stats.get(PART_STATS_PREFIX + "from_journal", 0)
    return asked > 0 and answers == 0


def exit_code(summary: StageSummary) -> int:
    """0 on success (rejects are not failures), 1 when rows failed or the LLM answered nothing."""
    return 1 if summary.failed or llm_answered_nothing(summary) else 0
