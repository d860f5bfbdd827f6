"""The dataset card `final/README.md`: what the final data holds, what the filter dropped, what the run cost.

Every number is counted from the Parquet files on disk at the time of writing, so the card equals the data.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from synth.export.formats import FORMATS
from synth.export.writer import default_negatives, negative_counts
from synth.filtering.distributions import HIST_EDGES
from synth.lineage import batch_note, stage_usage, upstream_stages
from synth.schema import COUNTED_COLUMNS, Task
from synth.store import atomic_write_bytes, iter_rejects, list_parts, read_manifest, read_part
from synth.tasks import TASKS

CARD = "README.md"
IMAGES = "_card"


def count_records(directory: Path) -> dict[str, Any]:
    """Rows per task, and per task by source, origin and language."""
    counts: dict[str, Any] = {"rows": Counter()}
    for column in COUNTED_COLUMNS:
        counts[column] = Counter()
    for part in list_parts(directory):
        table = read_part(part).select(list(COUNTED_COLUMNS))
        counts["rows"][part.task.value] += table.num_rows
        for column in COUNTED_COLUMNS:
            counts[column].update((part.task.value, value) for value in table.column(column).to_pylist())
    return counts


def count_drops(directory: Path) -> dict[str, Counter]:
    """Dropped records and dropped negatives per rule, from the rejects on disk."""
    drops = {"record": Counter(), "negative": Counter()}
    for row in iter_rejects(directory):
        drops[row["kind"]][row["rule"]] += 1
    return drops


def table_md(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def plot_histogram(path: Path, title: str, distribution: dict[str, Any]) -> None:
    """Before/after histogram of one kind of score as a PNG (fixed 0.05 bins over [-1, 1])."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    centres = (HIST_EDGES[:-1] + HIST_EDGES[1:]) / 2
    width = HIST_EDGES[1] - HIST_EDGES[0]
    fig, axis = plt.subplots(figsize=(6, 3.2), dpi=100)
    for stage, colour in (("before", "#bbbbbb"), ("after", "#1f77b4")):
        hist = distribution.get(stage, {}).get("hist")
        if hist:
            axis.bar(centres, hist, width=width, color=colour, alpha=0.8, label=f"{stage} filter")
    axis.set_title(title)
    axis.set_xlabel("cosine similarity to the query")
    axis.set_ylabel("count")
    axis.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    plt.close(fig)


def usage_rows(directory: Path) -> list[list[Any]]:
    """LLM usage of every stage upstream of the final data, plus a total."""
    rows, total = [], np.zeros(4)
    for stage_dir in upstream_stages(directory)[1:]:
        manifest = read_manifest(stage_dir) or {}
        usage = stage_usage(manifest)
        if usage["requests"] or usage["prompt_tokens"]:
            values = [usage[k] for k in ("requests", "prompt_tokens", "completion_tokens", "cost_usd")]
            total += values
            rows.append([manifest.get("stage", stage_dir.name), *format_usage(values)])
    if rows:
        rows.append(["**total**", *format_usage(total.tolist())])
    return rows


def format_usage(values: list[float]) -> list[str]:
    return [f"{int(values[0]):,}", f"{int(values[1]):,}", f"{int(values[2]):,}", f"${values[3]:.4f}"]


def distribution_rows(distributions: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for kind in ("positive", "negative"):
        for stage in ("before", "after"):
            d = distributions.get(kind, {}).get(stage, {})
            if d.get("count"):
                rows.append([kind, stage, f"{d['count']:,}", d["mean"], d["p10"], d["p50"], d["p90"]])
    return rows


def counts_section(directory: Path) -> list[str]:
    counts = count_records(directory)
    lines = ["## Records per task type", "",
             table_md(["task", "records"], [[t.value, f"{counts['rows'][t.value]:,}"] for t in Task]), ""]
    for column in COUNTED_COLUMNS:
        rows = [[task, value, f"{n:,}"] for (task, value), n in sorted(counts[column].items())]
        lines += [f"## Records per {column}", "", table_md(["task", column, "records"], rows) if rows else "none", ""]
    return lines


def negatives_section(directory: Path) -> list[str]:
    """Negatives per record, and what that makes of the export formats with a fixed number of negative columns."""
    parts, rows, notes = list_parts(directory), [], []
    for task, spec in TASKS.items():
        task_parts = [p for p in parts if p.task == task]
        if not spec.negatives or not task_parts:
            continue
        counts = negative_counts(task_parts)
        rows += [[task.value, have, f"{n:,}"] for have, n in sorted(counts.items())]
        columns = default_negatives(counts)
        fewer = sum(n for have, n in counts.items() if have < columns)
        notes.append(f"- {task.value}: {columns} negative columns; {fewer:,} records with fewer are not exported")
    if not rows:
        return []
    fixed = ", ".join(name for name, export in FORMATS.items() if export.fixed_negatives)
    return ["## Negatives per record", "", table_md(["task", "negatives", "records"], rows), "",
            f"`synth export` gives the rows of {fixed} the most common negative count among records that have "
            "negatives (`--num-negatives` sets another):", "", *notes, ""]


def drops_section(directory: Path, manifest: dict[str, Any]) -> list[str]:
    drops = count_drops(directory)
    rules = sorted(set(drops["record"]) | set(drops["negative"]))
    rows = [[rule, f"{drops['record'][rule]:,}", f"{drops['negative'][rule]:,}"] for rule in rules]
    lines = ["## Filter rules and drops", "",
             table_md(["rule", "records dropped", "negatives dropped"], rows) if rows else "Nothing dropped.", "",
             "Settings:", "", "```json", json.dumps(manifest.get("config", {}), indent=1, sort_keys=True), "```", ""]
    thresholds = manifest.get("thresholds")
    if thresholds:
        applied = ", ".join(f"{origin} {value}" for origin, value in thresholds.items())
        lines += [f"Query-positive cosine thresholds applied, per origin: {applied}", ""]
    return lines


def scores_section(directory: Path, manifest: dict[str, Any]) -> list[str]:
    distributions = manifest.get("score_distributions", {})
    rows = distribution_rows(distributions)
    if not rows:
        return ["## Scores (cosine to the query)", "", "No retrieval scores in this data.", ""]
    lines = ["## Scores (cosine to the query)", "",
             table_md(["scores", "filter", "count", "mean", "p10", "p50", "p90"], rows), ""]
    for kind in ("positive", "negative"):
        if distributions.get(kind, {}).get("before", {}).get("count"):
            plot_histogram(directory / IMAGES / f"{kind}_scores.png", f"{kind} scores", distributions[kind])
            lines += [f"![{kind} scores]({IMAGES}/{kind}_scores.png)", ""]
    return lines


def usage_section(directory: Path) -> list[str]:
    rows = usage_rows(directory)
    header = ["stage", "requests", "prompt tokens", "completion tokens", "cost"]
    batched = [(manifest.get("stage", d.name), batch_note(manifest))
               for d in upstream_stages(directory)[1:] for manifest in [read_manifest(d) or {}]]
    notes = [f"- `{stage}` in batch mode: {note}, at batch prices" for stage, note in batched if note]
    return ["## LLM usage of the run", "",
            table_md(header, rows) if rows else "No LLM requests upstream of this data.", "",
            *([*notes, ""] if notes else [])]


def render_card(directory: Path) -> str:
    """The card's Markdown; writes the histogram PNGs it links to."""
    directory = Path(directory)
    manifest = read_manifest(directory) or {}
    tasks = ", ".join(f"`{t.value}/`" for t in Task)
    intro = ["# Dataset card", "",
             f"Produced by synth's `{manifest.get('stage', 'filter')}` stage: Parquet parts in the unified schema "
             f"under {tasks}; dropped records and negatives with their rule under `_rejects/`.", ""]
    lines = intro + counts_section(directory) + negatives_section(directory) + drops_section(directory, manifest)
    return "\n".join(lines + scores_section(directory, manifest) + usage_section(directory))


def set_section(path: Path, title: str, lines: list[str]) -> None:
    """Add the `## title` section to the Markdown file at `path`, or replace it (up to the next `## ` heading), so
    a stage run after the card was written (eval) can refresh its own section; other sections stay as they are."""
    heading = f"## {title}"
    old = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    start = old.index(heading) if heading in old else len(old)
    end = next((i for i in range(start + 1, len(old)) if old[i].startswith("## ")), len(old))
    before = old[:start] + ([""] if old[:start] and old[start - 1] else [])
    text = "\n".join(before + [heading, "", *lines] + (["", *old[end:]] if old[end:] else []))
    atomic_write_bytes(path, (text.rstrip("\n") + "\n").encode("utf-8"))


def write_card(directory: Path) -> Path:
    """Write `README.md` (and its images) into a final data directory; returns the card's path."""
    path = Path(directory) / CARD
    atomic_write_bytes(path, render_card(directory).encode("utf-8"))
    return path
