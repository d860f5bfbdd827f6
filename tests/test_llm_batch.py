"""Batch mode (`--llm-mode batch` / `offline`) end to end against the loopback Files and Batches server."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from batch_server import BatchServer
from helpers import SYNTH, started_servers, synth_process
from synthesis_fixtures import RETRIEVAL_ROWS, FakeModel, write_input
from typer.testing import CliRunner

from synth.cli import app
from synth.schema import Task
from synth.store import iter_rejects, iter_rows

runner = CliRunner()


@pytest.fixture
def make_batch_server() -> Any:
    yield from started_servers(lambda **options: BatchServer(handler=FakeModel(), **options))


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return write_input(tmp_path / "in", Task.RETRIEVAL, RETRIEVAL_ROWS)


def config(tmp_path: Path, **batch: Any) -> Path:
    path = tmp_path / "synth.toml"
    lines = ["[paraphrase]", "batch_poll = 0.02", *(f"{k} = {json.dumps(v)}" for k, v in batch.items())]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def paraphrase(source: Path, out: Path, server: Any, *extra: str) -> Any:
    return runner.invoke(app, ["paraphrase", str(source), "--out", str(out), "--base-url", server.base_url,
                               "--api-key", server.api_key, "--model", server.model, "-n", "2", *extra])


def records(out: Path) -> list[dict[str, Any]]:
    return sorted((r for r in iter_rows(out)), key=lambda r: r["id"])


def test_batch_mode_gives_the_records_of_online_mode(make_batch_server, source, tmp_path):
    server = make_batch_server()
    online = paraphrase(source, tmp_path / "online", server)
    assert online.exit_code == 0, online.output
    batch = paraphrase(source, tmp_path / "batch", server, "--llm-mode", "batch", "--config",
                       str(config(tmp_path)))
    assert batch.exit_code == 0, batch.output
    assert records(tmp_path / "batch") == records(tmp_path / "online")
    assert server.batches and all(b["status"] == "completed" for b in server.batches.values())
    manifest = json.loads((tmp_path / "batch" / "_manifest.json").read_text())
    assert manifest["batch"]["batches"] == len(server.batches)
    assert manifest["batch"]["answered"] == sum(server.submitted.values())


@pytest.fixture
def reference(make_batch_server, source, tmp_path) -> list[dict[str, Any]]:
    """The records an online run makes (the fake model answers a body the same way on every server)."""
    result = paraphrase(source, tmp_path / "online", make_batch_server())
    assert result.exit_code == 0, result.output
    return records(tmp_path / "online")


def test_an_expired_batch_resubmits_only_what_is_missing(make_batch_server, source, tmp_path, reference):
    server = make_batch_server(expire=[0.5])
    result = paraphrase(source, tmp_path / "batch", server, "--llm-mode", "batch", "--config", str(config(tmp_path)))
    assert result.exit_code == 0, result.output
    assert records(tmp_path / "batch") == reference
    first, second, *_ = server.batches.values()
    assert first["status"] == "expired" and first["request_counts"] == {"total": 4, "completed": 2, "failed": 0}
    resubmitted = {key for key, times in server.submitted.items() if times > 1}
    assert len(resubmitted) == 2  # the half the expired batch did not answer, and nothing else
    assert second["request_counts"]["total"] == 2


def test_a_failed_batch_is_submitted_again(make_batch_server, source, tmp_path, reference):
    server = make_batch_server(fail=1)
    result = paraphrase(source, tmp_path / "batch", server, "--llm-mode", "batch", "--config", str(config(tmp_path)))
    assert result.exit_code == 0, result.output
    assert records(tmp_path / "batch") == reference
    first, second, *_ = server.batches.values()
    assert first["status"] == "failed" and first["errors"]["data"][0]["code"] == "invalid_file"
    assert second["status"] == "completed" and second["input_file_id"] != first["input_file_id"]


def test_request_errors_in_the_error_file_are_asked_again(make_batch_server, source, tmp_path, reference):
    server = make_batch_server()
    server.script(["server_error", None, "unavailable"])  # the first and third lines of the first batch fail
    result = paraphrase(source, tmp_path / "batch", server, "--llm-mode", "batch", "--config", str(config(tmp_path)))
    assert result.exit_code == 0, result.output
    assert records(tmp_path / "batch") == reference
    first = next(iter(server.batches.values()))
    assert first["status"] == "completed" and first["error_file_id"]
    assert first["request_counts"] == {"total": 4, "completed": 2, "failed": 2}
    assert sorted(server.submitted.values()).count(2) == 2


def test_kill_9_while_polling_then_rerun_submits_nothing_again(make_batch_server, source, tmp_path, reference):
    server = make_batch_server(step_seconds=1.0)
    out = tmp_path / "batch"
    args = [*SYNTH, "paraphrase", str(source), "--out", str(out), "--base-url", server.base_url, "--api-key",
            server.api_key, "--model", server.model, "-n", "2", "--llm-mode", "batch", "--config",
            str(config(tmp_path))]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not server.batches and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # the run is polling now
        assert process.poll() is None
        process.kill()
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
    assert len(server.batches) == 1
    server.step_seconds = 0.01
    again = synth_process(*args[len(SYNTH):], timeout=120)
    assert again.returncode == 0, again.stderr
    assert records(out) == reference
    assert set(server.submitted.values()) == {1}  # no request was in two batches
    first = next(iter(server.batches.values()))
    assert first["status"] == "completed"


def vllm_answer(line: dict[str, Any], model: FakeModel, fail: bool) -> dict[str, Any]:
    """What `vllm run-batch` writes for one input line: a chat completion, or an inline error."""
    if fail:
        return {"id": "vllm-1", "custom_id": line["custom_id"], "response": {"status_code": 400, "request_id": "r"},
                "error": {"object": "error", "message": "prompt too long", "type": "BadRequestError", "code": 400}}
    content = model(line["body"])
    body = {"id": "cmpl-1", "object": "chat.completion", "model": line["body"]["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}}
    return {"id": "vllm-1", "custom_id": line["custom_id"], "response": {"status_code": 200, "request_id": "r",
            "body": body}, "error": None}


def test_offline_export_and_import_round_trips_with_vllm_output(source, tmp_path, reference):
    out, model = tmp_path / "offline", FakeModel()
    run = ["paraphrase", str(source), "--out", str(out), "--model", "test-model", "-n", "2", "--llm-mode", "offline"]
    config = tmp_path / "synth.toml"  # online prices only: imports cost half of them
    config.write_text("[paraphrase.prices.test-model]\ninput = 2.0\noutput = 4.0\n", encoding="utf-8")
    exported: list[int] = []
    for round_trip in range(6):
        result = runner.invoke(app, run)
        if result.exit_code == 0:
            break
        assert result.exit_code == 1, result.output
        requests = tmp_path / f"requests-{round_trip}.jsonl"
        assert runner.invoke(app, ["batch", "export", str(out), "--out", str(requests)]).exit_code == 0
        lines = [json.loads(line) for line in requests.read_text().splitlines()]
        assert all(line["custom_id"] and line["method"] == "POST" and line["url"] == "/v1/chat/completions"
                   for line in lines)
        exported.append(len(lines))
        answers = tmp_path / f"answers-{round_trip}.jsonl"
        answers.write_text("".join(json.dumps(vllm_answer(line, model, round_trip == 0 and i == 0)) + "\n"
                                   for i, line in enumerate(lines)))
        imported = runner.invoke(app, ["batch", "import", str(out), str(answers), "--config", str(config)])
        assert imported.exit_code == 0, imported.output
        assert f"{len(lines) - (round_trip == 0)} answers and {int(round_trip == 0)} failed lines" in imported.output
    assert result.exit_code == 0, result.output
    assert records(out) == reference
    assert exported[0] == 4 and exported[1] >= 1  # the failed line went out again
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["batch"]["batches"] == len(exported)
    assert manifest["batch"]["answered"] == sum(exported) - 1 and manifest["batch"]["errors"] == 1
    assert manifest["batch"]["completion_tokens"] == 20 * (sum(exported) - 1)
    assert manifest["batch"]["cost_usd"] == pytest.approx((sum(exported) - 1) * (10 * 1.0 + 20 * 2.0) / 1e6)
    status = runner.invoke(app, ["batch", "status", str(out)])
    assert status.exit_code == 0 and "offline: 0 requests wait for a batch, 0 are in batches" in status.output


def test_llm_mode_must_be_known(source, tmp_path):
    result = synth_process("paraphrase", source, "--out", tmp_path / "o", "--model", "m", "--llm-mode", "later")
    assert result.returncode == 2 and "mode must be one of online, batch, offline" in result.stderr


PIPELINE = """
name = "batched"
[llm]
base_url = "{base_url}"
api_key = "{api_key}"
model = "test-model"
mode = "batch"
batch_poll = 0.02
batch_max_requests = 3
[[stage]]
use = "ingest"
inputs = ["{source}"]
shape = "qa"
[[stage]]
use = "paraphrase"
num = 1
"""


def test_a_pipeline_in_batch_mode_and_its_status(make_batch_server, tmp_path):
    server = make_batch_server()
    source = tmp_path / "qa.jsonl"
    source.write_text("".join(json.dumps({"question": r["query"], "answer": r["positive"]}) + "\n"
                              for r in RETRIEVAL_ROWS), encoding="utf-8")
    pipeline = tmp_path / "pipeline.toml"
    pipeline.write_text(PIPELINE.format(base_url=server.base_url, api_key=server.api_key, source=source))
    env = {**os.environ, "COLUMNS": "250"}
    result = synth_process("run", pipeline, "--out", tmp_path / "run", env=env)
    assert result.returncode == 0, result.stderr
    assert len(server.batches) >= 2  # 4 requests, at most 3 per batch file
    assert max(b["request_counts"]["total"] for b in server.batches.values()) == 3
    paraphrased = [r for r in iter_rows(tmp_path / "run" / "paraphrase") if r["origin"] == "paraphrase"]
    assert len(paraphrased) == len(RETRIEVAL_ROWS)
    status = synth_process("status", tmp_path / "run", env=env)
    assert f"({len(server.batches)} batches, 4 requests, waited" in status.stdout, status.stdout
    batches = synth_process("batch", "status", tmp_path / "run", env=env)
    assert batches.returncode == 0 and batches.stdout.count("completed") == len(server.batches)
    assert "paraphrase: 0 requests wait for a batch, 0 are in batches" in batches.stdout


def test_cancel_keeps_the_answered_part_and_resubmits_the_rest(make_batch_server, source, tmp_path, reference):
    server = make_batch_server(step_seconds=1.0)
    out = tmp_path / "batch"
    args = [*SYNTH, "paraphrase", str(source), "--out", str(out), "--base-url", server.base_url, "--api-key",
            server.api_key, "--model", server.model, "-n", "2", "--llm-mode", "batch", "--config",
            str(config(tmp_path))]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
                b["request_counts"]["completed"] for b in list(server.batches.values())):
            time.sleep(0.02)
        cancel = runner.invoke(app, ["batch", "cancel", str(out), "--base-url", server.base_url,
                                     "--api-key", server.api_key])
        assert cancel.exit_code == 0 and "cancelling 1 batches" in cancel.output, cancel.output
        server.step_seconds = 0.01
        assert process.wait(timeout=120) == 0, process.stderr.read() if process.stderr else ""
    finally:
        if process.poll() is None:
            process.kill()
    first = next(iter(server.batches.values()))
    assert first["status"] == "cancelled"
    answered = first["request_counts"]["completed"]
    assert 1 <= answered < 4
    assert sorted(server.submitted.values()).count(2) == 4 - answered  # only what it had not answered went again
    assert records(out) == reference


def test_embeddings_through_a_batch_from_python(make_batch_server, tmp_path):
    from synth.llm import LLMEngine, LLMSettings
    from synth.llm.batch.driver import run_batched
    from synth.stage import StageSummary

    server = make_batch_server()
    options = {"base_url": server.base_url, "api_key": server.api_key, "model": server.model, "mode": "batch",
               "batch_poll": 0.02, "out": str(tmp_path / "embed")}
    bodies = [{"model": server.model, "input": [f"text {i}", f"more {i}"]} for i in range(3)]
    answers: list[Any] = []

    def embed(given: dict[str, Any]) -> StageSummary:
        with LLMEngine(LLMSettings.from_options(given), journal=tmp_path / "embed" / "_journal.sqlite",
                       progress=False) as engine:
            answers[:] = engine.post_json_many("/embeddings", bodies)
        return StageSummary("embed", tmp_path / "embed")

    run_batched(embed, options, "embed")
    assert [b["endpoint"] for b in server.batches.values()] == ["/v1/embeddings"]
    assert all(a.ok and a.from_journal for a in answers)
    assert [len(a.data["data"]) for a in answers] == [2, 2, 2]


def test_a_run_killed_between_submit_and_journaling_adopts_its_batch(make_batch_server, tmp_path):
    from synth.llm import LLMSettings
    from synth.llm.batch.client import BatchClient
    from synth.llm.batch.driver import submit, wait
    from synth.llm.batch.files import request_line
    from synth.llm.batch.store import BatchStore

    server = make_batch_server()
    settings = LLMSettings.from_options({"base_url": server.base_url, "api_key": server.api_key, "batch_poll": 0.02})
    store = BatchStore(tmp_path / "_journal.sqlite")
    body = json.dumps({"model": server.model, "input": ["a"]})
    store.collect({"k1": ("/embeddings", body)})
    job_id = store.new_job("/embeddings", "/v1/embeddings", ["k1"])
    client = BatchClient(settings)
    file_id = client.upload("x.jsonl", request_line("k1", "/embeddings", body))
    store.update_job(job_id, file_id=file_id, status="uploaded")
    client.submit(file_id, "/embeddings", job_id)  # the run dies here: the batch exists, its id is not journaled
    store.collect({"k1": ("/embeddings", body), "k2": ("/embeddings", json.dumps({"model": "m", "input": ["b"]}))})
    store.new_job("/embeddings", "/v1/embeddings", ["k2"])  # another run died before uploading this one
    submit(store, client, settings)
    wait(store, client, settings)
    assert len(server.batches) == 2 and server.submitted == {"k1": 1, "k2": 1}
    assert [job.status for job in store.jobs()] == ["completed", "completed"]
    assert {job.batch_id for job in store.jobs()} == set(server.batches)
    answers = store.journal.get_many(["k1", "k2"])
    assert answers["k1"]["data"][0]["embedding"] and answers["k2"]["data"][0]["embedding"]
    assert store.counts() == (0, 0)
    store.close()


def test_requests_a_batch_never_answers_fail_after_max_attempts_and_the_next_run_asks_again(
        make_batch_server, source, tmp_path, reference):
    server = make_batch_server(expire=[0.0, 0.0])  # two batches in a row expire before answering anything
    out = tmp_path / "batch"
    given = ["--llm-mode", "batch", "--max-attempts", "2", "--config", str(config(tmp_path))]
    result = paraphrase(source, out, server, *given)
    assert result.exit_code == 1
    assert "batch: gave up after 2 attempts: batch_expired" in result.output
    assert [b["status"] for b in server.batches.values()] == ["expired", "expired"]
    again = paraphrase(source, out, server, *given)
    assert again.exit_code == 0, again.output
    assert records(out) == reference


def test_the_filter_judge_in_batch_mode(make_batch_server, tmp_path):
    from pipeline_fixtures import retrieval, write_stage

    def judge(body: dict[str, Any]) -> str:
        answers = "weather" not in body["messages"][-1]["content"]
        return json.dumps({"answers": answers, "reason": "on topic" if answers else "talks about the weather"})

    server = make_batch_server()
    server.handler = judge
    rows = [retrieval(query, positive, positive_score=0.9) for query, positive in (
        ("How do I list installed packages?", "dpkg -l lists every installed package."),
        ("How do I remove a package?", "The weather is sunny today."))]
    source = write_stage(tmp_path / "in", [rows])
    settings = tmp_path / "filter.toml"
    settings.write_text('[filter]\nmode = "batch"\nbatch_poll = 0.02\n', encoding="utf-8")
    result = runner.invoke(app, ["filter", str(source), "--out", str(tmp_path / "final"), "--judge", "true",
                                 "--base-url", server.base_url, "--api-key", server.api_key, "--model", server.model,
                                 "--config", str(settings)])
    assert result.exit_code == 0, result.output
    assert [r["query"] for r in iter_rows(tmp_path / "final")] == ["How do I list installed packages?"]
    assert [b["request_counts"]["total"] for b in server.batches.values()] == [2]
    assert server.log.total("chat") == 2  # the batch's two lines, nothing online


def test_an_answer_cut_in_a_batch_is_rejected_and_tried_with_the_next_seed(make_batch_server, source, tmp_path):
    server = make_batch_server()
    server.script(["length"])  # the first line of the first batch is cut at max_tokens
    out = tmp_path / "batch"
    result = paraphrase(source, out, server, "--llm-mode", "batch", "--config", str(config(tmp_path)))
    assert result.exit_code == 0, result.output
    assert [r["rule"] for r in iter_rejects(out)] == ["answer_cut"]
    assert len([r for r in iter_rows(out) if r["origin"] == "paraphrase"]) == 2 * len(RETRIEVAL_ROWS)
    assert [b["request_counts"]["total"] for b in server.batches.values()] == [4, 1]


def test_the_card_counts_batch_work_at_batch_prices(tmp_path):
    from synth.card import usage_section

    stage, final = tmp_path / "paraphrase", tmp_path / "final"
    batch = {"batches": 2, "requests": 6, "answered": 6, "errors": 0, "prompt_tokens": 600, "completion_tokens": 300,
             "cost_usd": 0.25, "wait_seconds": 5400.0}
    part = {"input": str(stage / "retrieval" / "part-00000.parquet")}
    for directory, manifest in ((stage, {"stage": "paraphrase", "parts": {}, "batch": batch}),
                                (final, {"stage": "filter", "parts": {"retrieval/part-00000": part}})):
        directory.mkdir()
        (directory / "_manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    text = "\n".join(usage_section(final))
    assert "| paraphrase | 6 | 600 | 300 | $0.2500 |" in text
    assert "- `paraphrase` in batch mode: 2 batches, 6 requests, waited 1.5h, at batch prices" in text


def endpoints_config(tmp_path: Path, servers: list[Any], marked: int | None) -> Path:
    """A paraphrase table in batch mode over several [[paraphrase.endpoints]], the one at `marked` with batch = true."""
    path = tmp_path / "endpoints.toml"
    lines = ["[paraphrase]", "batch_poll = 0.02", 'mode = "batch"', f'model = "{servers[-1].model}"']
    for index, server in enumerate(servers):
        lines += ["[[paraphrase.endpoints]]", f'url = "{server.base_url}"', f'key = "{server.api_key}"',
                  *(["batch = true"] if index == marked else [])]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_with_several_endpoints_batch_mode_uses_the_one_marked_batch(make_batch_server, make_openai_server, source,
                                                                     tmp_path, reference):
    online, server = make_openai_server(), make_batch_server()  # the first endpoint has no Batch API
    args = ["paraphrase", str(source), "--out", str(tmp_path / "batch"), "-n", "2", "--config"]
    result = runner.invoke(app, [*args, str(endpoints_config(tmp_path, [online, server], marked=1))])
    assert result.exit_code == 0, result.output
    assert records(tmp_path / "batch") == reference
    assert server.batches and online.log.total() == 0  # everything went through the marked endpoint's batches
    args[3] = str(tmp_path / "unmarked")
    unmarked = synth_process(*args, endpoints_config(tmp_path, [online, server], marked=None))
    assert unmarked.returncode == 2 and "mark the one whose Batch API to use with batch = true" in unmarked.stderr
    assert unmarked.stderr.count("error") == 1 and not (tmp_path / "unmarked").exists()
