"""What a run directory holds, stage by stage, and what a rerun would do: read from run.toml and the manifests.

"What a rerun would do" is the executor's own decision (`synth.executor.dry_run`) over the same plan of parts.
"""

from __future__ import annotations

import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synth.errors import InputFileError, SynthError, UsageError
from synth.executor import Decision, PartPlan, dry_run
from synth.filtering.spec import AUDIT_ENDPOINTS
from synth.lineage import batch_note, stage_usage
from synth.pipeline.plan import load_plan
from synth.pipeline.runner import RUN_FILE
from synth.stages import stage_spec
from synth.store import is_failed, manifest_totals, read_manifest


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
    batches: str = ""
    """Batch mode's batches and waiting time (`synth.lineage.batch_note`)."""
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per endpoint of the stage's latest run: requests, failures, latency percentiles, cost."""
    audit_endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The same of the false-negative audit that the filter's latest `--audit` ran."""
    rerun: str = ""


def load_run(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        raise InputFileError(f"not a run directory (no {RUN_FILE}): {run_dir}")
    return tomllib.loads(path.read_text(encoding="utf-8"))


def rerun_text(decisions: Counter[Decision]) -> str:
    """What a rerun would do, from the executor's decision for each part."""
    skip = decisions[Decision.SKIP]
    todo = sum(decisions.values()) - skip
    if not todo:
        return f"skip all {skip} parts"  # nothing new, changed, failed or missing
    detail = ", ".join(f"{decisions[d]} {d}" for d in Decision if d is not Decision.SKIP and decisions[d])
    return f"process {todo} parts ({detail}), skip {skip}"


def stage_status(stage: dict[str, Any]) -> StageStatus:
    status = StageStatus(stage["name"], stage["use"], Path(stage["out"]))
    manifest = read_manifest(status.out)
    plans: list[PartPlan] | None = None
    problem = ""
    try:
        plans = list(stage_spec(stage["use"]).plans(stage))
        status.parts_total = len(plans)
    except UsageError as exc:  # an upstream stage not run yet, an input file gone: the run would stop the same way
        problem = str(exc)
    if manifest is None:
        status.rerun = "run (not started)"
        return status
    entries, cfg_hash = manifest.get("parts", {}), manifest.get("config_hash")
    totals = manifest_totals(manifest)
    status.started = True
    status.parts_done = sum(not is_failed(e) and e.get("config_hash") == cfg_hash for e in entries.values())
    status.failed, status.rows_in, status.rows_out = totals["failed"], totals["rows_in"], totals["rows_out"]
    status.rejects_by_rule = totals["rejects_by_rule"]
    status.usage = stage_usage(manifest)
    status.batches = batch_note(manifest)
    status.endpoints = manifest.get("endpoints") or {}
    status.audit_endpoints = manifest.get(AUDIT_ENDPOINTS) or {}
    status.rerun = rerun_text(dry_run(plans, status.out, manifest)) if plans is not None else f"stop: {problem}"
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
