"""A run directory on an object store (`s3://` on a loopback S3 server): the same records as a local run, parts
committed whole, a killed run resumed from what the store holds, one-line errors for a bad URI or endpoint."""

from __future__ import annotations

import shutil
from pathlib import Path

from test_pipeline_run import final_records, write_pipeline

from synth.pipeline.plan import load_plan
from synth.pipeline.runner import run_plan


def run(pipeline: Path, out: str | Path) -> None:
    plan = load_plan(pipeline, out)
    run_plan(plan, plan.stages)


def materialised(s3_store, name: str, into: Path) -> Path:
    """The objects under `name`, written to a fresh local folder: what the store alone holds."""
    for rel, data in s3_store.objects(name).items():
        (into / rel).parent.mkdir(parents=True, exist_ok=True)
        (into / rel).write_bytes(data)
    return into


def test_sample_pipeline_on_s3_gives_the_local_runs_records(tmp_path, openai_server, s3_store):
    pipeline = write_pipeline(tmp_path, openai_server)
    run(pipeline, tmp_path / "local")
    local = final_records(tmp_path / "local")
    shutil.rmtree(tmp_path / "cache-pipeline.toml")
    run(pipeline, s3_store.uri("run"))
    stored = materialised(s3_store, "run", tmp_path / "stored")
    assert local and final_records(stored) == local
