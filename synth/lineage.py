"""Which stage directories produced a stage's data: follow each manifest's part inputs upstream."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synth.llm.accounting import PART_STATS_PREFIX
from synth.store import MANIFEST, read_manifest

USAGE_KEYS = ("requests", "answered", "from_journal", "prompt_tokens", "completion_tokens", "cost_usd")
"""LLM engine counters that stages put in their per-part stats, prefixed (see synth.llm.accounting)."""


def stage_dir_of(input_path: str) -> Path | None:
    """The stage directory a part file belongs to (`STAGE/TASK/part-N.parquet`), or None for raw input files."""
    candidate = Path(input_path).parent.parent
    return candidate if (candidate / MANIFEST).is_file() else None


def upstream_stages(directory: Path) -> list[Path]:
    """`directory` and every stage directory upstream of it, each once, nearest first."""
    seen: list[Path] = []
    queue = [Path(directory).resolve()]
    while queue:
        current = queue.pop(0)
        manifest = read_manifest(current)
        if current in seen or manifest is None:
            continue
        seen.append(current)
        for entry in manifest.get("parts", {}).values():
            parent = stage_dir_of(entry.get("input", ""))
            if parent is not None and parent.resolve() not in seen:
                queue.append(parent.resolve())
    return seen


def batch_note(manifest: dict[str, Any]) -> str:
    """A stage's batch-mode work in words ("3 batches, 120 requests, waited 2.1h"), or "" when it used none."""
    batch = manifest.get("batch") or {}
    if not batch.get("batches"):
        return ""
    waited = duration(float(batch.get("wait_seconds", 0)))
    return f"{batch['batches']:,} batches, {batch.get('requests', 0):,} requests, waited {waited}"


def duration(seconds: float) -> str:
    """Seconds as a short age: 40s, 12.5m, 2.1h, 1.0d."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def stage_usage(manifest: dict[str, Any]) -> dict[str, float]:
    """LLM requests sent, tokens and cost summed over a stage's parts (answers from the journal cost nothing),
    plus what its batches answered, at batch prices."""
    usage = dict.fromkeys(USAGE_KEYS, 0.0)
    batch = manifest.get("batch") or {}  # batch mode: answers come through the journal, their cost is counted here
    for key in ("requests", "answered", "prompt_tokens", "completion_tokens", "cost_usd"):
        usage[key] += batch.get(key, 0)
    for entry in manifest.get("parts", {}).values():
        for key in USAGE_KEYS:
            value = entry.get("stats", {}).get(PART_STATS_PREFIX + key, 0)
            if isinstance(value, int | float):
                usage[key] += value
    return usage
