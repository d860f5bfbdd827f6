"""What a run directory holds, stage by stage, and what a rerun would do: read from run.toml and the manifests."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synth.errors import InputFileError, SynthError
from synth.lineage import read_manifest, stage_usage
from synth.pipeline.plan import load_plan
from synth.pipeline.runner import RUN_FILE
from synth.store import MANIFEST, file_fingerprint, list_parts, part_name


@dataclass
class StageStatus:
    name: str
    use: str
    out: Path
    started: bool = False
    parts_done: int = 0
    parts_total: int | None = None
    rows_in: int = 0
    rows_out: int = 0
    failed: int = 0
    rejects_by_rule: dict[str, int] = field(default_factory=dict)
    usage: dict[str, float] = field(default_factory=dict)
    rerun: str = ""


def load_run(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        raise InputFileError(f"not a run directory (no {RUN_FILE}): {run_dir}")
    return tomllib.loads(path.read_text(encoding="utf-8"))


def input_parts(inputs: list[str]) -> list | None:
    """The parts a part-wise stage reads, in run_stage's order; None when its inputs are raw files (ingest)."""
    parts = []
    for item in inputs:
        if not (Path(item) / MANIFEST).is_file():
            return None
        parts += list_parts(Path(item))
    return parts


def finished(entry: dict[str, Any], cfg_hash: str) -> bool:
    return entry.get("config_hash") == cfg_hash and not entry.get("failed")


def rerun_plan(parts: list, manifest: dict[str, Any]) -> str:
    """Compare the input parts on disk with the manifest, the way run_stage decides what to redo."""
    entries, cfg_hash = manifest.get("parts", {}), manifest.get("config_hash")
    counts = {"skip": 0, "new": 0, "changed": 0, "failed": 0}
    for index, part in enumerate(parts):
        entry = entries.get(f"{part.task.value}/{part_name(index)}")
        if entry is None:
            counts["new"] += 1
        elif entry.get("fingerprint") != file_fingerprint(part.path):
            counts["changed"] += 1
        elif not finished(entry, cfg_hash):
            counts["failed"] += 1
        else:
            counts["skip"] += 1
    todo = counts["new"] + counts["changed"] + counts["failed"]
    if not todo:
        return f"skip all {counts['skip']} parts"  # nothing new, changed or failed
    detail = ", ".join(f"{n} {k}" for k, n in counts.items() if n and k != "skip")
    return f"process {todo} parts ({detail}), skip {counts['skip']}"


def stage_status(stage: dict[str, Any]) -> StageStatus:
    status = StageStatus(stage["name"], stage["use"], Path(stage["out"]))
    if stage["use"] == "export":
        files = sorted(status.out.rglob("train-*")) if status.out.is_dir() else []
        status.started, status.parts_done, status.parts_total = bool(files), len(files), len(files)
        status.rerun = "rewrite the exports" if files else "export the final data"
        return status
    manifest = read_manifest(status.out)
    parts = input_parts(stage.get("inputs", []))
    status.parts_total = len(parts) if parts is not None else None
    if manifest is None:
        status.rerun = "run (not started)"
        return status
    entries = manifest.get("parts", {})
    status.started = True
    status.parts_done = sum(finished(e, manifest.get("config_hash")) for e in entries.values())
    status.failed = sum(e.get("failed", 0) for e in entries.values())
    status.rows_in = sum(e.get("rows_in", 0) for e in entries.values())
    status.rows_out = sum(e.get("rows_out", 0) for e in entries.values())
    for entry in entries.values():
        for rule, count in entry.get("rejects_by_rule", {}).items():
            status.rejects_by_rule[rule] = status.rejects_by_rule.get(rule, 0) + count
    status.usage = stage_usage(manifest)
    if parts is None:
        status.parts_total = len(entries)
        status.rerun = f"re-read inputs, skip {status.parts_done} unchanged parts"
    else:
        status.rerun = rerun_plan(parts, manifest)
    return status


def changed_stages(run: dict[str, Any], run_dir: Path) -> set[str]:
    """Stages whose options in the pipeline file differ now from run.toml (a rerun redoes them and what follows)."""
    pipeline = Path(run.get("pipeline", ""))
    if not pipeline.is_file():
        return set()
    try:
        current = {s["name"]: s for s in load_plan(pipeline, run_dir).config()["stage"]}
    except SynthError:
        return set()
    return {s["name"] for s in run.get("stage", []) if current.get(s["name"]) != s}


def run_status(run_dir: Path) -> tuple[dict[str, Any], list[StageStatus]]:
    """run.toml and the status of each of its stages, in pipeline order."""
    run = load_run(run_dir)
    statuses = [stage_status(stage) for stage in run.get("stage", [])]
    changed = changed_stages(run, Path(run_dir))
    for status in statuses:
        if status.name in changed and status.started:
            status.rerun = f"options changed in {Path(run['pipeline']).name}: redo every part"
    return run, statuses
