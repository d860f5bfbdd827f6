"""A run directory on an object store (`s3://` on a loopback S3 server): the same records as a local run, parts
committed whole, a killed run resumed from what the store holds, one-line errors for a bad URI or endpoint."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pyarrow.fs as pafs
import pytest
from helpers import SYNTH, synth_process
from pipeline_fixtures import querygen_pipeline
from test_pipeline_run import final_records, write_pipeline

from synth import storage
from synth.executor.lock import StageBusy, stage_lease
from synth.pipeline.plan import load_plan
from synth.pipeline.runner import run_plan
from synth.store import iter_rows


def run(pipeline: Path, out: str | Path) -> list:
    plan = load_plan(pipeline, out)
    return run_plan(plan, plan.stages)


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
    keys = set(s3_store.objects("run"))
    assert {"run.toml", "final/_manifest.json", "querygen/_journal.sqlite", "mine/_index/index.faiss"} <= keys
    assert not [k for k in keys if k.endswith((".tmp", storage.LEASE, "_synth.lock", "-wal"))]
    stored = materialised(s3_store, "run", tmp_path / "stored")
    assert local and final_records(stored) == local
    for manifest in stored.rglob("_manifest.json"):  # every part a manifest lists is on the store
        for entry in json.loads(manifest.read_text())["parts"].values():
            assert all((manifest.parent / rel).is_file() for rel in entry["files"])


def test_a_run_killed_mid_stage_resumes_from_what_the_store_holds(tmp_path, make_openai_server, s3_store,
                                                                   monkeypatch):
    clean_server = make_openai_server()
    run(querygen_pipeline(tmp_path, clean_server, rows=4, parts=6, concurrency=2), tmp_path / "clean")
    clean = sorted(iter_rows(tmp_path / "clean" / "querygen"), key=lambda r: r["id"])

    server = make_openai_server(latency=0.1)
    pipeline = querygen_pipeline(tmp_path, server, rows=4, parts=6, concurrency=2)
    uri, manifest = s3_store.uri("run"), s3_store.key("run") + "/querygen/_manifest.json"
    driver = subprocess.Popen([*SYNTH, "run", str(pipeline), "--out", uri], start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "SYNTH_REMOTE_CACHE": str(tmp_path / "node-a")})
    while driver.poll() is None and s3_store.fs.get_file_info(manifest).size is None:
        time.sleep(0.01)
    assert driver.poll() is None, "the run finished before it could be killed"
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    with s3_store.fs.open_input_stream(manifest) as src:
        done = set(json.loads(src.read())["parts"])
    assert 1 <= len(done) < 6
    monkeypatch.setenv("SYNTH_REMOTE_CACHE", str(tmp_path / "node-b"))  # another node: nothing local to start from
    [summary] = run(pipeline, uri)  # the killed run's lease names a process of this host that is gone: taken at once
    assert (summary.skipped, summary.processed) == (len(done), 6 - len(done))
    stored = materialised(s3_store, "run", tmp_path / "stored")
    assert sorted(iter_rows(stored / "querygen"), key=lambda r: r["id"]) == clean


def test_a_put_killed_midway_leaves_no_object(tmp_path, s3_store):
    """A file committed to the store is one object or none: a writer killed while putting it leaves nothing."""
    pipe = tmp_path / "local" / "part-00000.parquet"
    script = f"""
import os, sys
from synth import storage
local = storage.mount({s3_store.uri('run')!r})
os.mkfifo(local / "part-00000.parquet")
print("ready", flush=True)
storage.committed(local / "part-00000.parquet")
"""
    env = {**os.environ, "SYNTH_REMOTE_CACHE": str(tmp_path / "copies")}
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    assert child.stdout.readline().strip() == "ready"
    [pipe] = (tmp_path / "copies").rglob("part-00000.parquet")
    with open(pipe, "wb") as feed:
        feed.write(os.urandom(6 << 20))  # more than one 5 MiB piece of a multipart upload
        feed.flush()
        time.sleep(1.0)
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert "part-00000.parquet" not in s3_store.objects("run")


def test_bad_uri_and_unreachable_store_are_one_line(tmp_path, openai_server, s3_store):
    pipeline = write_pipeline(tmp_path, openai_server)
    bad = synth_process("run", pipeline, "--out", "nosuch://bucket/run")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert "not a usable run directory URI: nosuch://bucket/run" in bad.stderr
    port = socket.socket()
    port.bind(("127.0.0.1", 0))  # a port nothing listens on
    dead = f"s3://synth-test/run?endpoint_override=127.0.0.1:{port.getsockname()[1]}&scheme=http"
    port.close()
    gone = synth_process("run", pipeline, "--out", dead, env={**os.environ,
                                                               "SYNTH_REMOTE_CACHE": str(tmp_path / "copies")})
    assert gone.returncode == 1 and len(gone.stderr.strip().splitlines()) == 1, gone.stderr
    assert gone.stderr.startswith("error: s3://synth-test/run: cannot list the run directory"), gone.stderr
    assert not [p for p in (tmp_path / "copies").rglob("*") if p.is_file()]  # nothing written, nothing removed


def test_a_stage_lease_is_held_by_one_process(s3_store, monkeypatch):
    monkeypatch.setattr("synth.executor.lock.SETTLE_SECONDS", 0.05)
    stage = storage.mount(s3_store.uri("run")) / "querygen"
    lease = stage / storage.LEASE
    with stage_lease(stage):
        held = json.loads(storage.read_object(lease))
        assert (held["pid"], held["host"]) == (os.getpid(), socket.gethostname())
        with pytest.raises(StageBusy, match=rf"leased by another synth process \(pid 1 on {socket.gethostname()},"):
            storage.write_object(lease, json.dumps({**held, "owner": "another", "pid": 1}).encode())
            with stage_lease(stage):
                pass
    assert storage.read_object(lease) is not None  # not ours any more when the stage ended: left to its owner
    for taken in ({"host": "elsewhere", "pid": 1, "expires": time.time() - 1},  # lapsed
                  {"host": socket.gethostname(), "pid": _dead_pid(), "expires": time.time() + 60}):  # holder gone
        storage.write_object(lease, json.dumps({"owner": "old", **taken}).encode())
        with stage_lease(stage):
            assert json.loads(storage.read_object(lease))["pid"] == os.getpid()
        assert storage.read_object(lease) is None
    storage.write_object(lease, json.dumps({"owner": "old", "host": "elsewhere", "pid": 1,
                                            "expires": time.time() + 60}).encode())
    with pytest.raises(StageBusy, match="on elsewhere, until"), stage_lease(stage):
        pass


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_uri_anywhere_but_the_run_directory_is_refused_in_one_line(tmp_path):
    single = synth_process("querygen", tmp_path, "--out", "s3://bucket/querygen")
    assert single.returncode == 2 and len(single.stderr.strip().splitlines()) == 1, single.stderr
    assert "s3://bucket/querygen: a URI works only as the run directory of `synth run`" in single.stderr
    pipeline = tmp_path / "p.toml"
    pipeline.write_text('[[stage]]\nuse = "ingest"\ninputs = ["s3://bucket/qa.jsonl"]\nshape = "qa"\n')
    result = synth_process("run", pipeline, "--out", tmp_path / "run")
    assert result.returncode == 2 and "input s3://bucket/qa.jsonl is a URI" in result.stderr, result.stderr
    assert not (tmp_path / "run").exists()


def test_the_local_copy_is_fetched_again_only_where_it_differs_from_the_store(tmp_path, openai_server, s3_store,
                                                                                 monkeypatch):
    pipeline = querygen_pipeline(tmp_path, openai_server, rows=3, concurrency=2)
    uri = s3_store.uri("run")
    run(pipeline, uri)
    fetched: list[str] = []
    download = storage._download
    monkeypatch.setattr(storage, "_download", lambda found, key, target: fetched.append(key) or
                        download(found, key, target))
    [summary] = run(pipeline, uri)  # the same node again: its copy is the store's
    assert fetched == [] and summary.skipped == 2
    [part] = [p for p in storage.resolve_dir(uri).rglob("part-00001.parquet") if "_rejects" not in str(p)]
    records = s3_store.objects("run")["querygen/retrieval/part-00001.parquet"]
    part.write_bytes(b"changed here, never put")
    [summary] = run(pipeline, uri)
    assert fetched == [s3_store.key("run/querygen/retrieval/part-00001.parquet")] and summary.skipped == 2
    assert part.read_bytes() == records  # the store's version again


def test_an_object_named_outside_the_run_directory_is_refused(tmp_path, openai_server, s3_store):
    request = urllib.request.Request(f"http://{s3_store.endpoint}/{s3_store.key('run')}/../escape.txt", data=b"x",
                                     method="PUT")
    urllib.request.urlopen(request).close()  # a key S3 keeps as given: `PREFIX/run/../escape.txt`
    listed = s3_store.fs.get_file_info(pafs.FileSelector(s3_store.key("run"), recursive=True))
    assert s3_store.key("run/../escape.txt") in [info.path for info in listed]
    copies = tmp_path / "copies"
    result = synth_process("run", write_pipeline(tmp_path, openai_server), "--out", s3_store.uri("run"),
                           env={**os.environ, "SYNTH_REMOTE_CACHE": str(copies)})
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "the object ../escape.txt lies outside the run directory; remove it" in result.stderr
    assert not [p for p in copies.rglob("*") if p.is_file() and not p.name.startswith("synced.sqlite")]
