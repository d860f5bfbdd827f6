"""The executor owns resume: its decision table, status as a dry run of it, stale files, path safety, the lock."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from helpers import synth_process
from ingest_fixtures import cli, write_lines

from synth.executor import Decision, decide, dry_run
from synth.pipeline.status import run_status
from synth.schema import Task
from synth.stage import PartResult, plan_input_parts, run_stage
from synth.store import ManifestError, config_hash, iter_rejects, read_manifest, reject, write_part
from tests.test_store_stage import UpperStage, make_input, retrieval_row


def decisions(source: Path, out: Path, stage: UpperStage) -> list[Decision]:
    """The executor's decision for every part of `source`, with `stage`'s current config."""
    manifest = read_manifest(out) or {}
    cfg_hash = config_hash(stage.config())
    return [decide(manifest.get("parts", {}).get(p.key), p, cfg_hash, out) for p in plan_input_parts([source])]


def manifest(out: Path) -> dict:
    return json.loads((out / "_manifest.json").read_text())


def test_decision_table_and_what_a_run_then_does(tmp_path: Path):
    source = make_input(tmp_path / "in", [[("a", "pa"), ("bad 0", "pb")], [("b", "pb")], [("c", "pc")],
                                          [("d", "pd")], [("flaky", "pf")]])
    out = tmp_path / "out"
    assert decisions(source, out, UpperStage()) == [Decision.NEW] * 5
    run_stage(UpperStage(fail_on="flaky"), [source], out, quiet=True)
    assert decisions(source, out, UpperStage()) == [Decision.SKIP] * 4 + [Decision.FAILED]
    assert decisions(source, out, UpperStage(suffix="!"))[:4] == [Decision.CONFIG] * 4
    write_part(source, Task.RETRIEVAL, "part-00001", [retrieval_row("b2", "pb")])  # a changed input part
    (out / "_rejects/retrieval/part-00000.parquet").unlink()  # a file the manifest lists is gone
    (out / "retrieval/part-00002.parquet").unlink()
    expected = [Decision.MISSING, Decision.CHANGED, Decision.MISSING, Decision.SKIP, Decision.FAILED]
    assert decisions(source, out, UpperStage()) == expected
    stage = UpperStage()
    summary = run_stage(stage, [source], out, quiet=True)
    assert (stage.calls, summary.processed, summary.skipped) == (4, 4, 1)
    assert decisions(source, out, UpperStage()) == [Decision.SKIP] * 5
    assert manifest(out)["parts"]["retrieval/part-00004"]["config_hash"] == manifest(out)["config_hash"]


def test_failed_is_one_field_and_old_incomplete_entries_are_still_redone(tmp_path: Path):
    source = make_input(tmp_path / "in", [[("a", "pa"), ("flaky", "pf")]])
    out = tmp_path / "out"
    run_stage(UpperStage(fail_on="flaky"), [source], out, quiet=True)
    entry = manifest(out)["parts"]["retrieval/part-00000"]
    assert entry["failed"] == 1 and entry["config_hash"] == manifest(out)["config_hash"]
    data = manifest(out)
    data["parts"]["retrieval/part-00000"]["config_hash"] = "incomplete"  # how earlier versions wrote it
    (out / "_manifest.json").write_text(json.dumps(data))
    assert decisions(source, out, UpperStage()) == [Decision.FAILED]


def write_run(run_dir: Path, source: Path, out: Path) -> Path:
    """A run directory whose one stage reads `source` and wrote `out` (what `synth status` reads)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    stage = f'[[stage]]\nname = "upper"\nuse = "filter"\ninputs = ["{source}"]\nout = "{out}"\n'
    (run_dir / "run.toml").write_text(f'config_hash = "x"\npipeline = "none.toml"\n{stage}')
    return run_dir


def test_status_is_a_dry_run_of_the_same_decision(tmp_path: Path):
    source = make_input(tmp_path / "in", [[("a", "pa")], [("b", "pb")], [("c", "pc")]])
    out = tmp_path / "out"
    run_dir = write_run(tmp_path / "run", source, out)
    run_stage(UpperStage(), [source], out, quiet=True)
    assert run_status(run_dir)[1][0].rerun == "skip all 3 parts"
    (out / "retrieval/part-00001.parquet").unlink()  # status used to say "skip" here while a run redid it
    write_part(source, Task.RETRIEVAL, "part-00002", [retrieval_row("c2", "pc")])
    status = run_status(run_dir)[1][0]
    assert status.rerun == "process 2 parts (1 changed, 1 files missing), skip 1"
    planned = dry_run(plan_input_parts([source]), out, read_manifest(out))
    stage = UpperStage()
    summary = run_stage(stage, [source], out, quiet=True)
    todo = sum(n for d, n in planned.items() if d is not Decision.SKIP)
    assert (summary.processed, summary.skipped) == (todo, planned[Decision.SKIP]) == (2, 1)
    assert run_status(run_dir)[1][0].rerun == "skip all 3 parts"


class RejectsOnce(UpperStage):
    """Rejects every query on its first configuration only."""

    def process(self, part, table: pa.Table) -> PartResult:
        if self.suffix:
            return super().process(part, table)
        return PartResult([], [reject("t", "x", "r", "r", {})])


def test_a_part_that_no_longer_has_rejects_loses_its_old_rejects_file(tmp_path: Path):
    source = make_input(tmp_path / "in", [[("a", "pa")]])
    out = tmp_path / "out"
    run_stage(RejectsOnce(), [source], out, quiet=True)
    assert (out / "_rejects/retrieval/part-00000.parquet").exists()
    summary = run_stage(RejectsOnce(suffix="!"), [source], out, quiet=True)
    assert summary.rejected == 0 and not list(iter_rejects(out))
    assert not (out / "_rejects/retrieval/part-00000.parquet").exists()


def test_a_rejects_file_left_by_a_crash_before_the_manifest_entry_is_removed(tmp_path: Path):
    source = make_input(tmp_path / "in", [[("a", "pa")]])
    out = tmp_path / "out"
    run_stage(RejectsOnce(), [source], out, quiet=True)
    (out / "_manifest.json").unlink()  # as if the run died after writing the files, before recording them
    run_stage(RejectsOnce(suffix="!"), [source], out, quiet=True)
    assert not list(iter_rejects(out))


@pytest.mark.parametrize("listed", ["../../victim.txt", "ABSOLUTE", "retrieval/link.parquet"])
def test_a_tampered_manifest_never_reads_or_deletes_outside_its_stage_dir(tmp_path: Path, listed: str):
    source = make_input(tmp_path / "in", [[("a", "pa")], [("b", "pb")]])
    out = tmp_path / "runs" / "out"
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    run_stage(UpperStage(), [source], out, quiet=True)
    if listed == "ABSOLUTE":
        listed = str(victim)
    elif listed.endswith("link.parquet"):
        (out / listed).symlink_to(victim)
    data = manifest(out)
    data["parts"]["retrieval/part-00001"]["files"].append(listed)
    (out / "_manifest.json").write_text(json.dumps(data))
    (source / "retrieval/part-00001.parquet").unlink()  # a rerun would now remove that part's files
    with pytest.raises(ManifestError, match="outside its stage directory"):
        run_stage(UpperStage(suffix="!"), [source], out, quiet=True)
    assert victim.read_text() == "keep me"
    with pytest.raises(ManifestError):
        read_manifest(out)


def test_a_tampered_manifest_is_a_one_line_usage_error(tmp_path: Path):
    data = write_lines(tmp_path / "qa.jsonl", [json.dumps({"question": "q", "answer": "a"})])
    out = tmp_path / "out"
    assert cli("ingest", data, "--shape", "qa", "--out", out).exit_code == 0
    (tmp_path / "victim.txt").write_text("keep me")
    entry = {"fingerprint": "f", "config_hash": "c", "files": ["../victim.txt"]}
    document = manifest(out)
    document["parts"]["retrieval/part-00009"] = entry
    (out / "_manifest.json").write_text(json.dumps(document))
    result = synth_process("ingest", data, "--shape", "qa", "--out", out)
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1
    assert "'../victim.txt', outside its stage directory" in result.stderr
    assert (tmp_path / "victim.txt").read_text() == "keep me"


HOLDER = """
import sys, time
from synth.executor import stage_lock
with stage_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_second_writer_of_a_stage_dir_stops_at_once_naming_the_first(tmp_path: Path):
    data = write_lines(tmp_path / "qa.jsonl", [json.dumps({"question": "q", "answer": "a"})])
    out = tmp_path / "out"
    out.mkdir()
    first = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline() == "held\n"  # another process writes `out` now
        second = synth_process("ingest", data, "--shape", "qa", "--out", out)
        assert second.returncode == 2 and len(second.stderr.splitlines()) == 1
        assert f"pid {first.pid} on {socket.gethostname()}" in second.stderr and str(out) in second.stderr
        assert not (out / "_manifest.json").exists()  # it stopped before writing anything
    finally:
        first.send_signal(signal.SIGKILL)  # a crash: the kernel releases the lock with the process
        first.wait()
    assert synth_process("ingest", data, "--shape", "qa", "--out", out).returncode == 0


def test_a_run_removes_the_temporary_files_a_killed_run_left(tmp_path: Path):
    source = make_input(tmp_path / "in", [[("a", "pa")]])
    out = tmp_path / "out"
    left = out / "retrieval" / ".part-00000.parquet.k1ll3d.tmp"
    left.parent.mkdir(parents=True)
    left.write_bytes(b"half a part")
    run_stage(UpperStage(), [source], out, quiet=True)
    assert not left.exists()
    assert (out / "retrieval" / "part-00000.parquet").is_file()


def test_a_stage_runs_with_fewer_collections_and_restores_the_collector(tmp_path: Path):
    import gc

    from synth.executor.collection import THRESHOLDS

    seen: list[tuple[tuple[int, ...], int]] = []

    class Watching(UpperStage):
        def process(self, part, table):
            seen.append((gc.get_threshold(), gc.get_freeze_count()))
            return super().process(part, table)

    before = gc.get_threshold()
    source = make_input(tmp_path / "in", [[("q1", "p1")], [("q2", "p2")]])
    summary = run_stage(Watching(), [source], tmp_path / "out", quiet=True)
    assert summary.processed > 0 and seen
    assert all(threshold == THRESHOLDS and frozen > 0 for threshold, frozen in seen)
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
