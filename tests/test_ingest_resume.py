"""Stable ids, rerun skips finished parts, changed input redoes its parts only, a SIGKILLed run resumes exactly."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from helpers import SAMPLES, SYNTH, synth_process
from ingest_fixtures import cli, rows, write_lines


def qa_lines(count: int, tag: str = "") -> list[str]:
    return [json.dumps({"question": f"question {i}{tag}", "answer": f"answer {i}"}) for i in range(count)]


def manifest(out: Path) -> dict:
    return json.loads((out / "_manifest.json").read_text())


def outputs(out: Path) -> dict[str, pa.Table]:
    """Every Parquet file under a stage directory (parts and rejects), by relative path."""
    return {str(p.relative_to(out)): pq.read_table(p) for p in sorted(out.rglob("*.parquet"))}


def same_outputs(first: Path, second: Path) -> bool:
    one, two = outputs(first), outputs(second)
    return one.keys() == two.keys() and all(one[key].equals(two[key]) for key in one)


def test_ids_are_stable_across_runs_and_directories(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    for out in (first, second):
        assert cli("ingest", SAMPLES / "qa.jsonl", "--shape", "qa", "--out", out).exit_code == 0
    assert rows(first, "retrieval") == rows(second, "retrieval")
    record = rows(first, "retrieval")[0]
    payload = json.dumps(["retrieval", record["query"], record["positive"]], ensure_ascii=False)
    assert record["id"] == hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]  # content hash, machine-free


def test_rerun_skips_finished_parts_and_redoes_only_changed_ones(tmp_path):
    data = write_lines(tmp_path / "qa.jsonl", qa_lines(30))
    out = tmp_path / "out"
    args = ["ingest", data, "--shape", "qa", "--out", out, "--part-rows", "10"]
    assert cli(*args).exit_code == 0
    before = manifest(out)["parts"]
    assert sorted(before) == ["retrieval/part-00000", "retrieval/part-00001", "retrieval/part-00002"]
    again = cli(*args)
    assert "[ingest] 3 of 3 parts already finished: skipped" in again.output
    assert manifest(out)["parts"] == before
    lines = qa_lines(30)
    lines[15] = json.dumps({"question": "question 15 changed", "answer": "answer 15"})
    write_lines(data, lines)
    changed = cli(*args)
    assert "2 of 3 parts already finished: skipped" in changed.output
    after = manifest(out)["parts"]
    assert after["retrieval/part-00000"] == before["retrieval/part-00000"]
    assert after["retrieval/part-00001"]["fingerprint"] != before["retrieval/part-00001"]["fingerprint"]
    assert "question 15 changed" in [r["query"] for r in rows(out, "retrieval")]


def test_config_change_redoes_every_part_and_shrinking_input_drops_stale_parts(tmp_path):
    data = write_lines(tmp_path / "qa.jsonl", qa_lines(25))
    out = tmp_path / "out"
    assert cli("ingest", data, "--shape", "qa", "--out", out, "--part-rows", "10").exit_code == 0
    result = cli("ingest", data, "--shape", "qa", "--out", out, "--part-rows", "10", "--lang", "de")
    assert "already finished" not in result.output
    assert {r["lang"] for r in rows(out, "retrieval")} == {"de"}
    write_lines(data, qa_lines(8))
    assert cli("ingest", data, "--shape", "qa", "--out", out, "--part-rows", "10", "--lang", "de").exit_code == 0
    assert sorted(outputs(out)) == ["retrieval/part-00000.parquet"]
    assert len(rows(out, "retrieval")) == 8


def test_a_run_killed_between_parts_resumes_to_the_same_output(tmp_path):
    lines = qa_lines(20_000)
    lines[123] = "{broken"  # a reject in the first part, so rejects are resumed too
    data = write_lines(tmp_path / "big.jsonl", lines)
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    flags = ["--shape", "qa", "--part-rows", "500"]
    assert cli("ingest", data, "--out", clean, *flags).exit_code == 0
    command = [*SYNTH, "ingest", str(data), "--out", str(killed)]
    process = subprocess.Popen([*command, *flags], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if (killed / "_manifest.json").exists() and len(manifest(killed)["parts"]) >= 2:
            break
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = len(manifest(killed)["parts"])
    assert 2 <= done < 40, "the run should have been killed part-way"
    resumed = cli("ingest", data, "--out", killed, *flags)
    assert f"{done} of 40 parts already finished: skipped" in resumed.output
    assert same_outputs(killed, clean)
    assert not list(killed.rglob("*.tmp"))


def test_worker_processes_make_the_same_parts_and_resume_alike(tmp_path):
    lines = qa_lines(3_000)
    lines[7] = "{broken"
    data = write_lines(tmp_path / "qa.jsonl", lines)
    single, parallel = tmp_path / "single", tmp_path / "parallel"
    flags = ["--shape", "qa", "--part-rows", "400"]
    assert cli("ingest", data, "--out", single, *flags).exit_code == 0
    assert cli("ingest", data, "--out", parallel, *flags, "--workers", "2").exit_code == 0
    assert same_outputs(single, parallel)
    assert manifest(single)["totals"] == manifest(parallel)["totals"]
    assert "8 of 8 parts already finished" in cli("ingest", data, "--out", parallel, *flags, "--workers", "2").output


def test_a_damaged_manifest_is_a_one_line_usage_error(tmp_path):
    out = tmp_path / "out"
    assert cli("ingest", SAMPLES / "qa.jsonl", "--shape", "qa", "--out", out).exit_code == 0
    (out / "_manifest.json").write_text('{"stage": "ingest", "parts": {', encoding="utf-8")
    result = synth_process("ingest", SAMPLES / "qa.jsonl", "--shape", "qa", "--out", out)
    assert result.returncode == 2
    assert "_manifest.json is not valid JSON" in result.stderr and "Traceback" not in result.stderr
