"""`synth run --executor ray` on a local Ray cluster that this module starts once: same data as the local executor,
one rate budget for all workers, a lost node and a killed driver that cost no answered request twice."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers import SAMPLES, SYNTH, synth_process
from pipeline_fixtures import querygen_pipeline
from s3_server import KEYS as S3_KEYS
from test_pipeline_run import final_records, write_pipeline

from synth.embed.base import normalize
from synth.embed.cached import CachedEmbedder
from synth.errors import ConfigError
from synth.executor import ExecutorSettings
from synth.executor.base import PartWork
from synth.llm.journal import Journal
from synth.pipeline.plan import load_plan
from synth.pipeline.runner import run_plan
from synth.store import iter_rows

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'synth[ray]')")
from ray.cluster_utils import Cluster  # noqa: E402

from synth.executor.placement import placing, run_placed  # noqa: E402
from synth.executor.ray import (  # noqa: E402
    ModelActors,
    RayExecutor,
    journal_copies,
    journal_root,
    spread_embedding,
    step_resources,
    sweep_journals,
)

ON_RAY = ExecutorSettings(kind="ray", snapshot_seconds=0.2)
TIMINGS = ("seconds", "finished_at", "endpoints")
"""Measures of the process that did the work, not of the data: times, and the per-endpoint latencies of the engines
that sent (checked on their own below)."""


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """One Ray head with 2 CPUs for the module (nodes are added and removed by the failure test), shut down after."""
    head = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 2, "include_dashboard": False,
        "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 2}})
    ray.init(address=head.address, runtime_env={"env_vars": S3_KEYS})  # every node has the store's credentials
    yield head
    ray.shutdown()
    head.shutdown()


def run(pipeline: Path, out: Path, executor: ExecutorSettings | None = None) -> None:
    plan = load_plan(pipeline, out)
    if executor is not None:
        plan.executor = executor
    run_plan(plan, plan.stages)


def without_timings(value: object) -> object:
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if k not in TIMINGS}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def run_files(run_dir: Path) -> dict[str, object]:
    """What a run leaves for its user: rows of every Parquet part and rejects file, JSONL, cards, manifests (without
    timings) and run.toml; the journals (`_journal*`) are the executor's own."""
    found: dict[str, object] = {}
    for path in sorted(p for p in run_dir.rglob("*") if p.is_file() and "_journal" not in str(p)):
        rel = str(path.relative_to(run_dir))
        if path.suffix == ".parquet":
            found[rel] = pq.read_table(path).to_pylist()
        elif path.name == "_manifest.json":
            found[rel] = without_timings(json.loads(path.read_text()))
        elif path.name != "_synth.lock":
            found[rel] = path.read_bytes()
    return found


def test_sample_pipeline_on_ray_leaves_exactly_the_local_runs_files(tmp_path, make_openai_server, cluster):
    server = make_openai_server()
    pipeline = write_pipeline(tmp_path, server)
    pipeline.write_text(pipeline.read_text().replace('use = "filter"\n', 'use = "filter"\njudge = true\n'))
    run_dir = tmp_path / "run"
    run(pipeline, run_dir)
    local = run_files(run_dir)
    shutil.rmtree(run_dir)  # the same directory again, so that paths and config hashes match
    shutil.rmtree(tmp_path / "cache-pipeline.toml")  # and no embedding cached by the first run
    before = server.log.total()
    run(pipeline, run_dir, ON_RAY)
    assert run_files(run_dir) == local
    totals = local["final/_manifest.json"]["totals"]
    assert totals["rows_out"] > 0 and totals["stats"]["llm_requests"] > 0  # the filter's judge ran on Ray too
    # every request the workers and the model actors sent is in the per-endpoint numbers of its stage's manifest
    endpoints = {p.parent.name: json.loads(p.read_text()).get("endpoints", {})
                 for p in run_dir.glob("*/_manifest.json")}
    assert {name for name, e in endpoints.items() if e} == {"paraphrase", "llm-negatives", "querygen", "mine",
                                                            "final"}
    assert sum(e[server.base_url]["requests"] for e in endpoints.values() if e) == server.log.total() - before
    assert list((run_dir / "querygen" / "_journals").glob("*.sqlite"))  # each part's journal, shipped


def test_sample_pipeline_on_ray_with_its_run_directory_on_s3(tmp_path, make_openai_server, cluster, s3_store):
    pipeline = write_pipeline(tmp_path, make_openai_server())
    run(pipeline, tmp_path / "local")
    shutil.rmtree(tmp_path / "cache-pipeline.toml")
    plan = load_plan(pipeline, s3_store.uri("run"))
    plan.executor = ON_RAY
    run_plan(plan, plan.stages)
    stored = tmp_path / "stored"  # what the store holds, and nothing of the driver's local copy
    for rel, data in s3_store.objects("run").items():
        (stored / rel).parent.mkdir(parents=True, exist_ok=True)
        (stored / rel).write_bytes(data)
    assert final_records(stored) == final_records(tmp_path / "local") != []
    assert list((stored / "querygen" / "_journals").glob("*.sqlite"))  # each part's journal snapshot, as objects


def test_ingest_parts_are_ray_tasks_and_equal_a_local_ingest_with_workers(tmp_path, cluster, monkeypatch):
    pipeline = tmp_path / "ingest.toml"
    pipeline.write_text(f"""
[[stage]]
use = "ingest"
inputs = ["{SAMPLES}/qa.jsonl"]
shape = "qa"
part_rows = 2
workers = 2
""", encoding="utf-8")
    run_dir = tmp_path / "run"
    run(pipeline, run_dir)  # two local worker processes
    local = run_files(run_dir)
    assert len(local["ingest/_manifest.json"]["parts"]) == 4  # 7 rows, 2 per part
    shutil.rmtree(run_dir)

    def not_here(*args: object) -> None:
        raise AssertionError("an ingest part was made in the driver")

    monkeypatch.setattr("synth.ingest.runner.make_part", not_here)  # the driver's module only: tasks import their own
    run(pipeline, run_dir, ON_RAY)
    assert run_files(run_dir) == local


def test_the_corpus_a_stage_prepares_is_embedded_by_its_model_actors(tmp_path, cluster):
    class WhereEmbedded:  # defined here, so that it travels by value; notes which process embedded each text
        model_id = "where"

        def embed(self, texts: list[str]) -> np.ndarray:
            with open(tmp_path / f"{os.getpid()}.txt", "a", encoding="utf-8") as fh:
                fh.writelines(f"{t}\n" for t in texts)
            return np.array([[len(t), len(t.split()), 1.0] for t in texts], dtype=np.float32)

    embedder = CachedEmbedder(WhereEmbedded())

    class Corpus(PartWork):
        def config(self) -> dict:
            return {}

        def plan(self) -> list:
            return []

        def run_part(self, plan):
            raise AssertionError("only prepared")

        def prepare_embedder(self) -> CachedEmbedder:
            return embedder

    texts = [f"passage {i} on topic {'x ' * (i % 7)}" for i in range(40)]
    work = Corpus()
    actors = ModelActors(work, ExecutorSettings(kind="ray", model_actors=2))
    try:
        with spread_embedding(work, actors):
            vectors = embedder.encode_documents(texts)
    finally:
        actors.close()
    by_process = {p.stem: p.read_text().splitlines() for p in tmp_path.glob("*.txt")}
    assert len(by_process) == 2 and str(os.getpid()) not in by_process  # two actors, not the driver
    assert sorted(t for embedded in by_process.values() for t in embedded) == sorted(texts)
    assert np.allclose(vectors, normalize(WhereEmbedded().embed(texts)))  # in the texts' order
    assert isinstance(embedder.backend, WhereEmbedded)  # the driver's own backend again


def test_a_step_of_prepare_runs_on_a_node_with_its_memory(cluster):
    def pid() -> int:
        return os.getpid()

    executor = RayExecutor(ExecutorSettings(kind="ray"))
    with placing(executor.place):
        assert run_placed(pid, memory=2**20) != os.getpid()  # a task, not the driver
        with pytest.raises(ConfigError, match=r"^a step of prepare needs 1048576\.0 GiB of memory, more than any"):
            run_placed(pid, memory=2**50)
    assert run_placed(pid, memory=2**50) == os.getpid()  # locally: here, whatever it needs


def test_a_step_that_uses_a_gpu_asks_for_one_where_the_cluster_has_any():
    assert step_resources(2**30, True, 4) == {"memory": 2**30, "num_cpus": 0, "num_gpus": 1}  # IVF build, GPUs
    assert step_resources(2**30, True, 0)["num_gpus"] == 0  # no GPU in the cluster: the CPU, not a wait for ever
    assert step_resources(2**30, False, 4)["num_gpus"] == 0  # an exact index: nothing for a GPU to do


def test_answers_of_a_local_run_are_reused_on_ray_and_back(tmp_path, make_openai_server, cluster):
    server = make_openai_server()
    pipeline = querygen_pipeline(tmp_path, server, rows=6)
    run_dir = tmp_path / "run"
    records: list[list[dict]] = []
    for executor in (None, ON_RAY, None):  # local, then Ray, then local again, each remaking every part
        shutil.rmtree(run_dir / "querygen" / "retrieval", ignore_errors=True)
        run(pipeline, run_dir, executor)
        records.append(sorted(iter_rows(run_dir / "querygen"), key=lambda r: r["id"]))
        asked = sum(server.log.received.values())
        assert asked == 12 and set(server.log.received.values()) == {1}  # every answer was bought once, at first
    assert records[0] == records[1] == records[2] and len(records[0]) == 12
    assert not list((run_dir / "querygen" / "_journals").glob("*.sqlite"))  # folded into the local journal


def test_two_workers_share_one_rate_budget(tmp_path, make_openai_server, cluster):
    rpm = 1200
    server = make_openai_server(rpm=rpm, rpm_window=2.0)
    # The budget is set 5% under the server's limit, as a user would: at the exact limit a request delayed by 50 ms
    # on a loaded machine lands in the next window with its successor and draws a 429.
    pipeline = querygen_pipeline(tmp_path, server, rows=60, rpm=rpm * 0.95, executor="ray")  # [executor] table
    run(pipeline, tmp_path / "run")
    times = sorted(server.log.times)
    assert server.log.faults["server_rpm_limit"] == 0  # two workers together never went over the server's limit
    assert len(times) == 120
    reached = (len(times) - 1) / (times[-1] - times[0]) * 60
    assert reached >= 0.9 * rpm, reached


def test_a_lower_limit_one_worker_learns_holds_every_worker(tmp_path, make_openai_server, cluster):
    server = make_openai_server(rpm=1200, rpm_window=2.0)  # its 429s carry x-ratelimit-limit-requests: 1200
    run(querygen_pipeline(tmp_path, server, rows=90, rpm=2400, executor="ray"), tmp_path / "run")
    assert len(list(iter_rows(tmp_path / "run" / "querygen"))) > 0
    refused = server.log.faults["server_rpm_limit"]
    assert refused <= 15, refused  # 9 measured; with a budget per worker, each worker learns alone: 44


def answers_in(snapshots: Path) -> int:
    total = 0
    for path in snapshots.glob("*.sqlite"):
        with sqlite3.connect(path) as db:
            total += db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    return total


def test_a_node_lost_mid_stage_completes_and_buys_no_answer_twice(tmp_path, make_openai_server, cluster):
    clean_server = make_openai_server()
    run(querygen_pipeline(tmp_path / "clean", clean_server, rows=30, concurrency=2), tmp_path / "clean" / "run")
    clean = sorted(iter_rows(tmp_path / "clean" / "run" / "querygen"), key=lambda r: r["id"])

    gate = threading.Event()
    gate.set()
    server = make_openai_server()
    handler = server.handler

    def gated(body: dict) -> str:  # runs on the server's loop: while the gate is shut, no answer goes out
        gate.wait(60)
        return handler(body)

    server.handler = gated
    pipeline = querygen_pipeline(tmp_path, server, rows=30, concurrency=2)

    class Blocker:  # defined here, so that it travels by value to the workers
        def ready(self) -> bool:
            return True

    blockers = [ray.remote(num_cpus=1)(Blocker).remote() for _ in range(2)]  # the head's CPUs: parts go to `doomed`
    ray.get([b.ready.remote() for b in blockers])
    doomed = cluster.add_node(num_cpus=1)
    failures: list[BaseException] = []

    def run_stage() -> None:
        try:
            run(pipeline, tmp_path / "run", ON_RAY)
        except BaseException as exc:  # the run must succeed, its last steps (the journal sweep) included
            failures.append(exc)

    done = threading.Thread(target=run_stage)
    done.start()
    snapshots = tmp_path / "run" / "querygen" / "_journals"
    while len([k for k in server.log.answered if k[0] == "chat"]) < 10:
        time.sleep(0.01)
    gate.clear()
    answered = {key for key in server.log.answered if key[0] == "chat"}
    deadline = time.monotonic() + 30
    while answers_in(snapshots) < len(answered):  # every answer given is in a shipped snapshot
        assert time.monotonic() < deadline, "the answers given never reached the journal snapshots"
        time.sleep(0.05)
    cluster.remove_node(doomed, allow_graceful=False)
    cluster.add_node(num_cpus=1)
    gate.set()
    done.join(120)
    assert not done.is_alive() and not failures, failures
    for blocker in blockers:
        ray.kill(blocker)
    assert sorted(iter_rows(tmp_path / "run" / "querygen"), key=lambda r: r["id"]) == clean
    assert all(server.log.received[key] == 1 for key in answered)  # no answered request was sent again
    assert not list(journal_root().glob(journal_copies(tmp_path / "run" / "querygen") + "/*"))  # the lost node's copy


def test_journal_copies_of_killed_workers_are_swept_but_never_a_live_ones(tmp_path, make_openai_server, cluster):
    server = make_openai_server()
    pipeline = querygen_pipeline(tmp_path, server, rows=3)
    out = tmp_path / "run" / "querygen"
    folders = [journal_root() / journal_copies(out).replace("*", node, 1) for node in ("gone-node", "live-node")]
    for folder in folders:  # as a worker killed mid-part leaves it, and as a live worker holds it
        folder.mkdir(parents=True)
        (folder / "retrieval--part-00000.lock").touch()
        with contextlib.closing(Journal(folder / "retrieval--part-00000.sqlite")) as journal:
            journal.put(f"answered by {folder.parent.name}", {"text": "kept"})
    live = os.open(folders[1] / "retrieval--part-00000.lock", os.O_RDWR)
    fcntl.flock(live, fcntl.LOCK_EX)
    try:
        run(pipeline, tmp_path / "run", ON_RAY)
    finally:
        os.close(live)
    assert not folders[0].exists()  # swept, its answer kept in the part's snapshot
    assert [p.name for p in folders[1].glob("*.sqlite")] == ["retrieval--part-00000.sqlite"]  # a live one's: kept
    with contextlib.closing(Journal(out / "_journals" / "retrieval--part-00000.sqlite")) as snapshot:
        assert snapshot.get_many(["answered by gone-node"]) == {"answered by gone-node": {"text": "kept"}}
    assert [p.parent for p in journal_root().glob(journal_copies(out) + "/*")] == [folders[1]] * 2  # its lock too
    shutil.rmtree(folders[1])


def test_driver_killed_with_sigkill_then_rerun_equals_a_clean_run(tmp_path, make_openai_server, cluster):
    clean_server = make_openai_server(latency=0.02)
    clean_dir = tmp_path / "clean"
    run(write_pipeline(tmp_path, clean_server, "clean.toml"), clean_dir)
    clean = final_records(clean_dir)

    server = make_openai_server(latency=0.02)
    pipeline = write_pipeline(tmp_path, server, "killed.toml")
    run_dir = tmp_path / "killed"
    driver = subprocess.Popen([*SYNTH, "run", str(pipeline), "--out", str(run_dir), "--executor", "ray",
                               "--address", cluster.address], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    point = clean_server.log.total() // 2
    while driver.poll() is None and server.log.total() < point:
        time.sleep(0.005)
    assert driver.poll() is None, "the driver finished before it could be killed"
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    run(pipeline, run_dir, ON_RAY)
    assert final_records(run_dir) == clean
    # Answers live on in the node's journal: only requests in flight at the kill (parts running x concurrency) again.
    repeated = sum(n - 1 for n in server.log.received.values() if n > 1)
    assert repeated <= 2 * 2, repeated


@pytest.mark.parametrize(("table", "flags", "message"), [
    ('kind = "spark"', [], "executor kind 'spark' in"),
    ('kind = "ray"\nmax_in_flight = 0', [], "executor max_in_flight in"),
    ('nodes = 3', [], "unknown key 'nodes' in [executor]"),
    ("", ["--executor", "spark"], "executor kind 'spark' in the command line is not one of local, ray"),
])
def test_executor_mistakes_are_one_line_errors(tmp_path, table, flags, message):
    pipeline = tmp_path / "p.toml"
    pipeline.write_text(f'[executor]\n{table}\n[[stage]]\nuse = "ingest"\ninputs = ["qa.jsonl"]\nshape = "qa"\n')
    result = synth_process("run", pipeline, "--out", tmp_path / "run", *flags)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_the_sweep_skips_a_node_that_left_after_it_was_listed(tmp_path, cluster, monkeypatch):
    """`ray.nodes()` may still call a node alive that is gone (health checks lag): its sweep task cannot be placed,
    and the stage that just succeeded must not fail for it."""
    out = tmp_path / "run" / "querygen"
    folder = journal_root() / journal_copies(out).replace("*", "gone-worker", 1)
    folder.mkdir(parents=True)
    (folder / "retrieval--part-00000.lock").touch()
    with contextlib.closing(Journal(folder / "retrieval--part-00000.sqlite")) as journal:
        journal.put("answered", {"text": "kept"})
    listed = ray.nodes()
    gone = {"NodeID": "ab" * 28, "Alive": True}  # an id no node of this cluster has
    monkeypatch.setattr(ray, "nodes", lambda: [gone, *listed])
    assert sweep_journals(out) == 1  # the live node's copy swept, the gone node skipped
    assert not (folder / "retrieval--part-00000.sqlite").exists()
