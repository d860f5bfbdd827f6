"""`synth inspect DIR`: schema, counts, samples and rejects of any stage output directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from synth.inspection import COUNTED_COLUMNS, inspect_dir

console = Console()
SAMPLE_CHARS = 100


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = text.replace("\n", "⏎")
    return text if len(text) <= SAMPLE_CHARS else text[: SAMPLE_CHARS - 1] + "…"


def _counts_table(info: dict[str, Any]) -> Table:
    table = Table()
    for column in ("column", "value", "rows"):
        table.add_column(column, justify="right" if column == "rows" else "left")
    for column in COUNTED_COLUMNS:
        for value, count in info[column].items():
            table.add_row(column, value, f"{count:,}")
    return table


def _print_task(task: str, info: dict[str, Any]) -> None:
    console.rule(f"{task}: {info['rows']:,} rows in {info['parts']} parts")
    console.print("schema: " + ", ".join(f"{name} {kind}" for name, kind in info["schema"].items()), highlight=False)
    console.print("rows by origin, source and lang:")
    console.print(_counts_table(info))
    for number, row in enumerate(info["samples"], 1):
        sample = Table(title=f"sample {number}", title_justify="left", show_header=False)
        for name, value in row.items():
            if value not in (None, [], "{}"):
                sample.add_row(name, _short(value))
        console.print(sample)


def _print_rejects(rejects: dict[str, Any]) -> None:
    console.rule(f"rejects: {rejects['total']:,}")
    if not rejects["total"]:
        return
    table = Table()
    for column in ("rule", "rows", "example location", "example reason"):
        table.add_column(column)
    for rule, count in rejects["by_rule"].items():
        example = rejects["examples"][rule][0]
        table.add_row(rule, f"{count:,}", example["location"], _short(example["reason"]))
    console.print(table)


def register(app: typer.Typer) -> None:
    @app.command("inspect")
    def inspect(
        directory: Path = typer.Argument(..., help="A stage output directory (ingest, paraphrase, mine, ...)."),
        samples: int = typer.Option(3, "--samples", "-n", help="Sample rows to show per task type."),
        as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    ) -> None:
        """Show schema, row counts per task type / origin / source / lang, sample rows and rejects per rule."""
        report = inspect_dir(directory, samples)
        if as_json:
            typer.echo(json.dumps(report, ensure_ascii=False, indent=1, default=str))
            return
        # soft_wrap: a long path must not split the header line (people and scripts grep for "stage: NAME").
        console.print(f"stage: {report['stage'] or 'unknown'}  {report['directory']}", markup=False, soft_wrap=True)
        if not report["tasks"]:
            console.print("no parts")
        for task, info in report["tasks"].items():
            _print_task(task, info)
        _print_rejects(report["rejects"])
