"""`synth run` and `synth status` as a user runs them, against the loopback server (LLM and /v1/embeddings)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
import tomllib
from pathlib import Path

import pytest
from helpers import SAMPLES, SYNTH

from synth.errors import ConfigError
from synth.pipeline.plan import load_plan
from synth.store import iter_rows

PIPELINE = """
name = "loop"
[llm]
base_url = "{base_url}"
api_key = "{api_key}"
model = "test-model"
concurrency = 2
max_attempts = 2
timeout = 5.0
[embedder]
embedder = "api"
embed_model = "test-model"
embed_base_url = "{base_url}"
embed_cache = "{cache}"
query_format = "{{query}}"

[[stage]]
use = "ingest"
name = "ingest-qa"
inputs = ["{samples}/qa.jsonl"]
shape = "qa"
[[stage]]
use = "ingest"
name = "ingest-sts"
inputs = ["{samples}/sts_binary.csv"]
shape = "sts-binary"
[[stage]]
use = "paraphrase"
inputs = ["ingest-qa", "ingest-sts"]
num = 1
max_tries = 2
[[stage]]
use = "llm-negatives"
num = 1
max_tries = 2
[[stage]]
use = "querygen"
num = 1
max_tries = 2
[[stage]]
use = "mine"
num_negatives = 2
[[stage]]
use = "filter"
min_score = {{ source = "off", default = "p25" }}
[[stage]]
use = "export"
format = ["sentence-transformers", "flagembedding"]
"""


def write_pipeline(tmp_path: Path, server, name: str = "pipeline.toml") -> Path:
    path = tmp_path / name
    path.write_text(PIPELINE.format(base_url=server.base_url, api_key=server.api_key, samples=SAMPLES,
                                    cache=tmp_path / f"cache-{name}"), encoding="utf-8")
    return path


def synth(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([*SYNTH, *args], capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def final_records(run_dir: Path) -> list[dict]:
    return sorted(iter_rows(run_dir / "final"), key=lambda r: r["id"])


def test_run_writes_final_card_exports_and_status(tmp_path, openai_server):
    pipeline = write_pipeline(tmp_path, openai_server)
    run_dir = tmp_path / "run"
    synth("run", str(pipeline), "--out", str(run_dir))
    run_file = (run_dir / "run.toml").read_text()
    assert openai_server.api_key not in run_file  # secrets never reach run.toml
    resolved = tomllib.loads(run_file)
    assert [s["name"] for s in resolved["stage"]] == [
        "ingest-qa", "ingest-sts", "paraphrase", "llm-negatives", "querygen", "mine", "filter", "export"]
    assert len(resolved["config_hash"]) == 16
    records = final_records(run_dir)
    assert records and len({r["id"] for r in records}) == len(records)
    assert {r["origin"] for r in records} >= {"source"}
    card = (run_dir / "final" / "README.md").read_text()
    assert "| retrieval |" in card and "## LLM usage of the run" in card and "paraphrase" in card
    assert list((run_dir / "export" / "sentence-transformers" / "retrieval").glob("train-*.parquet"))
    assert list((run_dir / "export" / "flagembedding" / "sts").glob("train-*.jsonl"))

    status = synth("status", str(run_dir)).stdout
    for name in ("ingest-qa", "paraphrase", "mine", "filter", "export"):
        assert name in status
    assert "skip all 2 parts" in status  # the filter would redo nothing

    sent = openai_server.log.total()
    again = synth("run", str(pipeline), "--out", str(run_dir))
    assert openai_server.log.total() == sent  # a finished run sends nothing on rerun
    assert "already finished: skipped" in again.stderr
    assert final_records(run_dir) == records


def test_from_and_to_run_a_slice(tmp_path, openai_server):
    pipeline = write_pipeline(tmp_path, openai_server)
    run_dir = tmp_path / "run"
    synth("run", str(pipeline), "--out", str(run_dir), "--to", "ingest-sts")
    assert (run_dir / "ingest-sts" / "_manifest.json").exists() and not (run_dir / "paraphrase").exists()
    assert openai_server.log.total() == 0
    status = synth("status", str(run_dir)).stdout
    assert "run (not started)" in status
    pipeline.write_text(pipeline.read_text().replace('shape = "sts-binary"', 'shape = "sts-binary"\nlang = "en"'))
    status = synth("status", str(run_dir)).stdout
    assert "options changed in pipeline.toml: redo every part" in status  # ingest-sts now has lang = "en"
    result = synth("run", str(pipeline), "--out", str(run_dir), "--from", "mine", check=False)
    assert result.returncode == 2 and "input not found" in result.stderr


def test_pipeline_mistakes_are_one_line_errors(tmp_path, openai_server):
    good = write_pipeline(tmp_path, openai_server).read_text()
    cases = {
        'use = "mine"\nnum_negatives = 2': ('use = "mine"\nnum_negativs = 2', "stage 'mine'"),
        'use = "querygen"': ('use = "querygen-x"', "unknown stage command 'querygen-x'"),
        '[llm]\n': ('[llm]\ncolour = "red"\n', "unknown key 'colour' in [llm]"),
    }
    for original, (broken, message) in cases.items():
        path = tmp_path / "broken.toml"
        path.write_text(good.replace(original, broken, 1), encoding="utf-8")
        with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
            load_plan(path)
    result = synth("run", str(path), "--out", str(tmp_path / "never"), check=False)  # the last broken file
    assert result.returncode == 2 and result.stderr.startswith("error:") and len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "never").exists()
    result = synth("status", str(tmp_path / "nothing"), check=False)
    assert result.returncode == 2 and "not a run directory" in result.stderr


@pytest.mark.timeout(600)
def test_kill_9_at_random_points_then_rerun_equals_a_clean_run(tmp_path, make_openai_server):
    clean_server = make_openai_server(latency=0.02)
    clean_dir = tmp_path / "clean"
    synth("run", str(write_pipeline(tmp_path, clean_server, "clean.toml")), "--out", str(clean_dir))
    clean = final_records(clean_dir)

    server = make_openai_server(latency=0.02)
    pipeline = write_pipeline(tmp_path, server, "killed.toml")
    run_dir = tmp_path / "killed"
    # Kill points are request counts, not seconds, so a fast machine cannot finish the run before the first kill.
    # The LLM stages, mining and the filter all send requests, so the points fall across the whole pipeline.
    requests_in_a_clean_run = clean_server.log.total()
    kill_points = sorted(random.Random(7).sample(range(requests_in_a_clean_run // 10,
                                                       requests_in_a_clean_run * 9 // 10), 3))
    kills = 0
    for point in kill_points:
        process = subprocess.Popen([*SYNTH, "run", str(pipeline), "--out", str(run_dir)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        while process.poll() is None and len(server.log.times) < point:  # len() of a list is safe across threads
            time.sleep(0.002)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            kills += 1
        process.wait()
    synth("run", str(pipeline), "--out", str(run_dir))
    assert kills >= 2
    resumed = final_records(run_dir)
    assert resumed == clean  # same ids, same content, no duplicates
    assert len({r["id"] for r in resumed}) == len(resumed)
    # Every request body was answered once; only those in flight at a kill (at most `concurrency` each) came again.
    repeated = sum(n - 1 for n in server.log.received.values() if n > 1)
    assert repeated <= kills * 2, (repeated, kills)
    assert sum(server.log.received.values()) >= sum(clean_server.log.received.values())
    assert json.loads((run_dir / "final" / "_manifest.json").read_text())["totals"]["rows_out"] == len(clean)


def run_sample_on_the_demo_model(tmp_path: Path, pipeline: str) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """`synth run data_samples/PIPELINE` with no endpoint configured (so on the bundled model); asserts exit 0."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_BASE_URL", "OPENAI_API_KEY")}
    run_dir = tmp_path / Path(pipeline).stem
    result = subprocess.run([*SYNTH, "run", str(SAMPLES / pipeline), "--out", str(run_dir)],
                            capture_output=True, text=True, env={**env, "SYNTH_EMBED_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir, result


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_sample_pipeline_on_the_embedded_local_model(tmp_path):
    """The quickstart: data_samples/pipeline.toml on the bundled SmolLM2-135M and the shipped MiniLM."""
    run_dir, result = run_sample_on_the_demo_model(tmp_path, "pipeline.toml")
    assert "starting the bundled SmolLM2-135M demo model" in result.stderr
    for stage in ("paraphrase", "llm-negatives", "querygen"):  # every LLM stage got answers the model wrote
        stats = json.loads((run_dir / stage / "_manifest.json").read_text())["totals"]["stats"]
        assert stats["llm_answered"] > 0 and stats["llm_completion_tokens"] > 0, (stage, stats)
        assert stats["llm_unreachable"] == 0, (stage, stats)
        assert f"{stage}: the model wrote (" in result.stderr  # the user sees one of its answers
    records = list(iter_rows(run_dir / "final"))
    assert {r["task"] for r in records} == {"retrieval", "sts", "cls"}
    assert {r["lang"] for r in records} >= {"en", "zh"}
    card = (run_dir / "final" / "README.md").read_text()
    assert "## LLM usage of the run" in card and "paraphrase" in card
    assert (run_dir / "final" / "_card" / "positive_scores.png").exists()
    assert list((run_dir / "export" / "sentence-transformers" / "retrieval").glob("train-*.parquet"))
    status = synth("status", str(run_dir)).stdout
    assert "querygen" in status and "filter" in status


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_documents_pipeline_on_the_embedded_local_model(tmp_path):
    """data_samples/documents.toml: documents -> passages -> queries -> mined negatives -> filter -> split -> export."""
    run_dir, result = run_sample_on_the_demo_model(tmp_path, "documents.toml")
    documents = (SAMPLES / "documents.jsonl").read_text(encoding="utf-8").splitlines()
    passages = list(iter_rows(run_dir / "ingest"))
    assert len({p["document_id"] for p in passages}) == len(documents) < len(passages)  # long ones were chunked
    stats = json.loads((run_dir / "querygen" / "_manifest.json").read_text())["totals"]["stats"]
    assert stats["llm_answered"] > 0 and stats["llm_completion_tokens"] > 0 and stats["kept"] > 0, stats
    assert "querygen: the model wrote (" in result.stderr
    mined = json.loads((run_dir / "mine" / "_manifest.json").read_text())["totals"]["stats"]
    assert mined["roundtrip_checked"] == stats["kept"]
    sides = {side: {r["document_id"] for r in iter_rows(run_dir / "split" / side)} for side in ("train", "eval")}
    assert sides["train"] and sides["eval"] and not sides["train"] & sides["eval"]
    assert (run_dir / "split" / "eval" / "corpus.jsonl").stat().st_size > 0
    assert list((run_dir / "export" / "jsonl" / "passage").glob("train-*.jsonl"))
