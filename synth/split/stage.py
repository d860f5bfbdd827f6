"""Split as a stage: one input part becomes `train/TASK/NAME.parquet` and `eval/TASK/NAME.parquet` under OUT.

The groups are global (a near duplicate may sit in any part), so the first part to do computes them over every
input part, and each part's fingerprint covers the whole input: a change anywhere redoes every part, and a rerun
with the same input, fraction and seed gives the same files. One manifest at OUT resumes both sides, so
`synth status` sees the stage; `OUT/train` and `OUT/eval` are stage directories in the unified layout that the
next stage (export, or a trainer) reads. The eval side's BEIR files are rewritten from its parts on every run.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa

from synth.errors import ConfigError
from synth.executor import PartPlan
from synth.schema import to_table
from synth.split.beir import write_beir
from synth.split.grouping import Grouping, build_grouping
from synth.stage import PartResult, Stage, StageSummary, plan_input_parts, run_stage
from synth.store import PartRef, read_manifest

SIDES = ("train", "eval")
GROUPS = "split_groups"
"""The manifest's stage-level record of how the groups came out (groups, eval groups, share)."""


def split_plans(source: Path) -> list[PartPlan]:
    """One part per input part, named as it; each fingerprint covers every input part, since groups are global."""
    plans = plan_input_parts([Path(source)], own_names=True)
    whole = hashlib.sha256("".join(p.fingerprint for p in plans).encode()).hexdigest()
    return [replace(p, fingerprint=hashlib.sha256(f"{whole}:{p.fingerprint}".encode()).hexdigest()) for p in plans]


class SplitStage(Stage):
    name = "split"

    def __init__(self, eval_fraction: float, seed: int, near_dup_threshold: float):
        self.eval_fraction = eval_fraction
        self.seed = seed
        self.near_dup_threshold = near_dup_threshold
        self.grouping: Grouping | None = None

    def config(self) -> dict[str, Any]:
        return {"eval_fraction": self.eval_fraction, "seed": self.seed, "near_dup_threshold": self.near_dup_threshold}

    def prepare(self, parts: list[PartRef]) -> None:
        grouping = build_grouping(parts, self.eval_fraction, self.seed, self.near_dup_threshold)
        if grouping.groups < 2:
            raise ConfigError(f"all {grouping.rows} records form one group (shared documents or near-duplicate "
                              "texts): there is nothing to split")
        if not grouping.eval_groups:
            raise ConfigError(f"eval_fraction {self.eval_fraction:g} leaves the eval side empty: {grouping.rows} "
                              f"records form {grouping.groups} groups, none small enough; raise the fraction")
        self.grouping = grouping

    def process(self, part: PartRef, table: pa.Table) -> PartResult:
        assert self.grouping is not None, "prepare runs before the first part"
        flags = self.grouping.eval_rows[part.key]
        rows = table.to_pylist()
        by_side = {"eval": [r for r, e in zip(rows, flags, strict=True) if e],
                   "train": [r for r, e in zip(rows, flags, strict=True) if not e]}
        files: dict[str, list[dict[str, Any]] | pa.Table] = {
            f"{side}/{part.task.value}/{part.name}.parquet": to_table(part.task, by_side[side])
            for side in SIDES if by_side[side]}
        return PartResult([], stats={f"{side} rows": len(by_side[side]) for side in SIDES}, files=files)

    def finish(self, out: Path) -> dict[str, Any]:
        beir = write_beir(Path(out) / "eval")
        facts: dict[str, Any] = {"beir": beir}
        if self.grouping is not None:  # all parts skipped: the groups recorded by the run that made them stand
            g = self.grouping
            facts[GROUPS] = {"groups": g.groups, "eval_groups": g.eval_groups, "records": g.rows,
                             "eval_records": g.eval_count, "joined_by_text": g.joined_by_text,
                             "eval_share": round(g.eval_share, 6)}
        return facts


def run_split(source: Path, out: Path, eval_fraction: float, seed: int, near_dup_threshold: float) -> StageSummary:
    """Split `source` into `out/train` and `out/eval`; the summary gives the achieved eval share."""
    stage = SplitStage(eval_fraction, seed, near_dup_threshold)
    summary = run_stage(stage, [Path(source)], Path(out), plans=split_plans(source))
    train, evaluation = summary.stats.get("train rows", 0), summary.stats.get("eval rows", 0)
    if train + evaluation:
        summary.stats["eval share"] = round(evaluation / (train + evaluation), 4)
    manifest = read_manifest(Path(out)) or {}
    summary.stats.update({f"beir {key}": n for key, n in manifest.get("beir", {}).items()})
    summary.stats.update({f"groups {key}": n for key, n in manifest.get(GROUPS, {}).items()
                          if key in ("groups", "eval_groups", "joined_by_text")})
    return summary
