"""Several endpoints behind one stage: a killed one loses nothing, a slow one gets less, a refusing one stops the
stage naming it, config errors are one line, and secrets stay out of manifests and errors."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from helpers import SAMPLES, synth_process
from openai_server import default_handler
from pydantic import BaseModel
from synthesis_fixtures import FakeModel
from typer.testing import CliRunner

from synth.cli import app
from synth.errors import FatalAPIError
from synth.llm import ChatRequest, LLMEngine, LLMSettings, endpoint_stats
from synth.llm.engine import _REMEMBERED_FORMS
from synth.store import iter_rows, read_manifest

runner = CliRunner()
KEY = "sk-endpoint-secret-4242"


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """data_samples/qa.jsonl ingested into small parts."""
    out = tmp_path_factory.mktemp("parts") / "qa"
    result = runner.invoke(app, ["ingest", str(SAMPLES / "qa.jsonl"), "--shape", "qa", "--out", str(out),
                                 "--part-rows", "4"])
    assert result.exit_code == 0, result.output
    return out


def settings_for(servers: list[Any], **extra: Any) -> LLMSettings:
    entries = [{"url": s.base_url, "key": KEY} for s in servers]
    return LLMSettings.from_options({"endpoints": entries, "model": "test-model", "timeout": 2.0,
                                     "max_attempts": 4, **extra})


def requests(n: int) -> list[ChatRequest]:
    return [ChatRequest([{"role": "user", "content": f"question {i}"}]) for i in range(n)]


def answered(server: Any) -> Counter[str]:
    return Counter({h: c for (endpoint, h), c in server.log.answered.items() if endpoint == "chat"})


def test_a_server_killed_mid_stage_loses_nothing_and_nothing_is_paid_twice(make_openai_server, tmp_path):
    servers = [make_openai_server(api_key=KEY, latency=0.02) for _ in range(3)]
    victim = servers[1]
    threading.Timer(0.3, victim.stop).start()
    journal = tmp_path / "journal.sqlite"
    with LLMEngine(settings_for(servers, concurrency=24), journal=journal, progress=False) as engine:
        results = engine.chat_many(requests(600))
        stats = engine.endpoint_stats()
    assert all(r.ok for r in results)
    survivors = answered(servers[0]) + answered(servers[2])
    assert len(survivors) + len(answered(victim)) >= 600
    assert max(survivors.values()) == 1  # the others never answered a request twice
    assert victim.log.total() > 0 and stats[victim.base_url]["taken_out"] >= 1
    assert stats[victim.base_url]["requests"] < stats[servers[0].base_url]["requests"]
    # every answer is journaled whichever endpoint gave it: a rerun sends nothing
    with LLMEngine(settings_for([servers[0]]), journal=journal, progress=False) as engine:
        before = servers[0].log.total()
        assert all(r.ok and r.from_journal for r in engine.chat_many(requests(600)))
    assert servers[0].log.total() == before


def test_a_failing_endpoint_is_taken_out_probed_and_taken_back(make_openai_server):
    good = make_openai_server(api_key=KEY, latency=0.01)
    flaky = make_openai_server(api_key=KEY, latency=0.01)
    flaky.script(["unavailable"] * 3)  # three 503s in a row, then healthy again
    with LLMEngine(settings_for([good, flaky], concurrency=4), progress=False) as engine:
        assert all(r.ok for r in engine.chat_many(requests(40)))
        assert engine.endpoint_stats()[flaky.base_url]["taken_out"] == 1
        answered_while_out = sum(answered(flaky).values())
        time.sleep(1.2)  # past the first backoff: the next request probes it, and its answer takes it back
        assert all(r.ok for r in engine.chat_many(requests(80)[40:]))
    assert sum(answered(flaky).values()) > answered_while_out + 10


def test_a_slow_server_gets_fewer_requests(make_openai_server):
    fast = make_openai_server(api_key=KEY, latency=0.01)
    slow = make_openai_server(api_key=KEY, latency=0.2)
    with LLMEngine(settings_for([fast, slow], concurrency=16), progress=False) as engine:
        assert all(r.ok for r in engine.chat_many(requests(300)))
        stats = engine.endpoint_stats()
    assert slow.log.total() * 4 < fast.log.total()
    assert stats[slow.base_url]["latency_ms_p50"] > stats[fast.base_url]["latency_ms_p50"]


def test_weights_share_the_requests(make_openai_server):
    heavy = make_openai_server(api_key=KEY, latency=0.05)
    light = make_openai_server(api_key=KEY, latency=0.05)
    entries = [{"url": heavy.base_url, "key": KEY, "weight": 3}, {"url": light.base_url, "key": KEY}]
    settings = LLMSettings.from_options({"endpoints": entries, "model": "test-model", "concurrency": 16})
    with LLMEngine(settings, progress=False) as engine:
        assert all(r.ok for r in engine.chat_many(requests(320)))
    assert 2 < heavy.log.total() / light.log.total() < 4.5


def test_an_endpoint_that_refuses_stops_the_stage_naming_it_without_its_key(make_openai_server):
    good = make_openai_server(api_key=KEY)
    wrong = make_openai_server(api_key="sk-the-right-one")  # our key is wrong there: 401 echoing the key sent
    with LLMEngine(settings_for([good, wrong]), progress=False) as engine, pytest.raises(FatalAPIError) as error:
        engine.chat_many(requests(40))
    message = str(error.value)
    assert wrong.base_url in message and "401" in message
    assert KEY not in message


def test_endpoints_in_a_pipeline_reach_the_manifest_and_status(make_openai_server, tmp_path, monkeypatch, parts):
    servers = [make_openai_server(api_key=KEY, handler=FakeModel()) for _ in range(2)]
    monkeypatch.setenv("SECOND_KEY", KEY)
    pipeline = tmp_path / "pipeline.toml"
    pipeline.write_text(f"""name = "fleet"
[llm]
model = "test-model"
prices = {{ test-model = {{ input = 100.0, output = 400.0 }} }}
[[llm.endpoints]]
url = "{servers[0].base_url}"
key = "{KEY}"
[[llm.endpoints]]
url = "{servers[1].base_url}"
key_env = "SECOND_KEY"

[[stage]]
use = "paraphrase"
inputs = ["{parts}"]
num = 2
""", encoding="utf-8")
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["run", str(pipeline), "--out", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert all(s.log.total() > 0 for s in servers), [s.log.received for s in servers]
    stage_dir = next(p for p in run_dir.iterdir() if (p / "_manifest.json").is_file())
    manifest = read_manifest(stage_dir)
    endpoints = manifest["endpoints"]
    assert set(endpoints) == {s.base_url for s in servers}
    assert sum(e["requests"] for e in endpoints.values()) >= len(list(iter_rows(stage_dir)))
    assert KEY not in result.output
    assert not [p for p in run_dir.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]
    monkeypatch.setenv("COLUMNS", "250")  # URLs whole on one line
    status = runner.invoke(app, ["status", str(run_dir)])
    assert status.exit_code == 0, status.output
    assert all(s.base_url in status.output for s in servers) and "p50" in status.output, status.output


@pytest.mark.parametrize(("llm", "message"), [
    ('[[llm.endpoints]]\nkey = "k"\n', "endpoints[0] needs a url"),
    ('[[llm.endpoints]]\nurl = "http://127.0.0.1:9/v1"\ntoken = "k"\n', "unknown key 'token' in endpoints[0]"),
    ('[[llm.endpoints]]\nurl = "http://127.0.0.1:9/v1"\nkey_env = "SYNTH_NO_SUCH_VAR"\n',
     "SYNTH_NO_SUCH_VAR (key_env) is not set"),
    ('[[llm.endpoints]]\nurl = "http://127.0.0.1:9/v1"\nweight = 0\n', "weight must be a positive number"),
    ('[[llm.endpoints]]\nurl = "ftp://127.0.0.1:9/v1"\n', "must start with http:// or https://"),
    ('base_url = ["http://127.0.0.1:9/v1", 3]\n', "base_url must be a URL or a list of URLs"),
])
def test_endpoint_config_errors_are_one_line(tmp_path: Path, parts: Path, llm: str, message: str) -> None:
    pipeline = tmp_path / "pipeline.toml"
    pipeline.write_text(f'name = "bad"\n[[stage]]\nuse = "paraphrase"\ninputs = ["{parts}"]\n[llm]\n{llm}',
                        encoding="utf-8")
    result = synth_process("run", pipeline, "--out", tmp_path / "run")
    assert result.returncode == 2, result.stderr
    assert [line for line in result.stderr.splitlines() if "error" in line] == [f"error: {message}"] or (
        message in result.stderr and result.stderr.count("error") == 1), result.stderr
    assert not (tmp_path / "run" / "paraphrase").exists()


def test_a_base_url_list_shares_one_key(make_openai_server):
    servers = [make_openai_server(api_key=KEY) for _ in range(2)]
    settings = LLMSettings.from_options({"base_url": [s.base_url for s in servers], "api_key": KEY,
                                         "model": "test-model"})
    with LLMEngine(settings, progress=False) as engine:
        assert all(r.ok for r in engine.chat_many(requests(60)))
        assert json.dumps(settings.public()).count(KEY) == 0
    assert all(s.log.total() > 10 for s in servers)


def test_a_lone_endpoint_is_never_taken_out(make_openai_server):
    server = make_openai_server(api_key=KEY)
    server.script(["unavailable"] * 3)  # enough to take out one of several
    with LLMEngine(settings_for([server], concurrency=1, max_attempts=6), progress=False) as engine:
        assert all(r.ok for r in engine.chat_many(requests(5)))
        assert engine.endpoint_stats()[server.base_url]["taken_out"] == 0
        assert engine.stats()["retries"] == 3


class Verdict(BaseModel):
    answers: bool
    reason: str


class FormsSeen:
    """A loopback handler that notes the structured-output form of each request it answers."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()

    def __call__(self, body: dict[str, Any]) -> str:
        self.seen[(body.get("response_format") or {}).get("type", "prompt")] += 1
        return default_handler(body)


def test_each_endpoint_keeps_the_structured_form_it_accepts(make_openai_server, tmp_path):
    full, plain = FormsSeen(), FormsSeen()
    servers = [make_openai_server(api_key=KEY, handler=full, latency=0.01),
               make_openai_server(api_key=KEY, handler=plain, latency=0.01, style="text_only")]  # 400 on any format
    asks = [ChatRequest([{"role": "user", "content": f"does passage {i} answer?"}], Verdict) for i in range(80)]
    journal = tmp_path / "journal.sqlite"
    with LLMEngine(settings_for(servers, concurrency=4), journal=journal, progress=False) as engine:
        assert all(r.ok and isinstance(r.parsed, Verdict) for r in engine.chat_many(asks[:40]))
    assert set(full.seen) == {"json_schema"} and full.seen["json_schema"] > 5  # never downgraded by the other
    assert set(plain.seen) == {"prompt"} and plain.seen["prompt"] > 5
    refused = servers[1].log.total() - sum(servers[1].log.answered.values())
    assert refused >= 2  # json_schema, then json_object_schema, refused before the schema went into the prompt
    # each choice is journaled under its endpoint: a new process sends each endpoint its form at once
    _REMEMBERED_FORMS.clear()
    with LLMEngine(settings_for(servers, concurrency=4), journal=journal, progress=False) as engine:
        assert all(r.ok for r in engine.chat_many(asks[40:]))
    assert servers[1].log.total() - sum(servers[1].log.answered.values()) == refused
    assert set(full.seen) == {"json_schema"} and set(plain.seen) == {"prompt"}


def test_without_a_model_each_endpoint_is_asked_which_it_serves(make_openai_server):
    sent: dict[str, Counter[str]] = {}

    def noting(name: str) -> Any:
        sent[name] = Counter()
        return lambda body: sent[name].update([body["model"]]) or "fine"

    servers = [make_openai_server(api_key=KEY, model=f"model-{i}", handler=noting(f"model-{i}")) for i in range(3)]
    entries = [{"url": s.base_url, "key": KEY} for s in servers]
    with LLMEngine(LLMSettings.from_options({"endpoints": entries, "timeout": 2.0}), progress=False) as engine:
        assert all(r.ok for r in engine.chat_many(requests(60)))
    assert all(set(sent[name]) == {name} and sent[name].total() > 5 for name in sent), sent  # each its own model
    wrong = make_openai_server(api_key="sk-the-right-one", model="model-x")  # our key is refused there
    entries.insert(1, {"url": wrong.base_url, "key": KEY})
    with LLMEngine(LLMSettings.from_options({"endpoints": entries, "timeout": 2.0}), progress=False) as engine, \
            pytest.raises(FatalAPIError) as error:
        engine.chat_many(requests(3))
    assert wrong.base_url in str(error.value) and "/models" in str(error.value) and KEY not in str(error.value)
    assert wrong.log.total() == 0 and sum(s.log.total() for s in servers) == 60  # nothing sent before it stopped


def test_latency_histograms_fold_across_processes_and_keep_percentiles_within_five_percent():
    rng = random.Random(3)
    latencies = [rng.lognormvariate(-1.2, 1.0) for _ in range(4000)]  # heavy-tailed, like a real API's

    def usage(values: list[float]) -> dict[str, Any]:
        histogram = Counter(endpoint_stats.bucket(v) for v in values)
        return {"requests": len(values), "failures": 1, "taken_out": 0, "cost_usd": 0.5, "latency": dict(histogram)}

    first, second = usage(latencies[:1500]), usage(latencies[1500:])  # two workers' engines
    folded = endpoint_stats.fold([{"u": first}, {"u": second}])["u"]
    assert endpoint_stats.since({"u": folded}, {"u": first}) == {"u": second}
    shown = endpoint_stats.summary(folded)
    assert (shown["requests"], shown["failures"], shown["cost_usd"]) == (4000, 2, 1.0)
    ordered = sorted(latencies)
    for q, key in ((0.5, "latency_ms_p50"), (0.9, "latency_ms_p90"), (0.99, "latency_ms_p99")):
        assert shown[key] == pytest.approx(1000 * ordered[int(q * len(ordered))], rel=0.05)
