"""The LLM engine against the loopback OpenAI-compatible server: answers, faults, limits, structured output, journal."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field

from synth.errors import ConfigError, FatalAPIError
from synth.llm import ChatRequest, LLMEngine, LLMSettings


class Pair(BaseModel):
    query: str
    positive: str
    negatives: list[str] = Field(min_length=1)


def ask(i: int, model: type[BaseModel] | None = Pair) -> ChatRequest:
    return ChatRequest([{"role": "user", "content": f"Write a retrieval pair about topic {i}."}], response_model=model)


def settings_for(server: Any, **options: Any) -> LLMSettings:
    return LLMSettings.from_options({"base_url": server.base_url, "api_key": server.api_key, "model": "m",
                                     "timeout": 2.0, "max_attempts": 4, **options})


def test_structured_answers_in_order_then_journal_answers_rerun(openai_server, tmp_path):
    journal = tmp_path / "_journal.sqlite"
    requests = [ask(i) for i in range(30)] + [ask(0)]  # a duplicate is sent once
    with LLMEngine(settings_for(openai_server), journal=journal, stage="t") as engine:
        first = engine.chat_many(requests)
        stats = engine.stats()
    assert all(r.ok and isinstance(r.parsed, Pair) for r in first)
    assert first[0].content == first[30].content and first[0].content != first[1].content
    assert stats["requests"] == 30 and stats["prompt_tokens"] > 0 and stats["completion_tokens"] > 0
    assert openai_server.log.total("chat") == 30
    with LLMEngine(settings_for(openai_server), journal=journal, stage="t") as engine:
        again = engine.chat_many(requests)
        assert engine.stats()["requests"] == 0 and engine.stats()["from_journal"] == 31
    assert [r.content for r in again] == [r.content for r in first]
    assert all(r.from_journal for r in again) and openai_server.log.total("chat") == 30


def test_fault_mix_every_request_answered_or_failed_and_nothing_answered_twice(make_openai_server, tmp_path):
    faults = {"rate_limit": 0.04, "server_error": 0.05, "unavailable": 0.04, "hang": 0.01, "reset": 0.04,
              "truncated": 0.04, "bad_schema": 0.04, "empty": 0.03, "length": 0.02}
    server = make_openai_server(faults=faults, seed=7, retry_after=0.05, hang_seconds=2.5)
    settings = settings_for(server, timeout=2.0, max_attempts=5, concurrency=16)
    journal = tmp_path / "_journal.sqlite"
    requests = [ask(i) for i in range(200)]
    with LLMEngine(settings, journal=journal) as engine:
        results = engine.chat_many(requests)
        stats = engine.stats()
    failed = [i for i, r in enumerate(results) if not r.ok]
    assert all(r.ok == (r.parsed is not None) for r in results)
    assert all(r.error for r in results if not r.ok)
    assert stats["retries"] > 10 and stats["reasks"] > 0 and stats["failures"] == len(failed)
    assert sum(server.log.faults.values()) > 50  # about 30% of requests were faulty
    with LLMEngine(settings, journal=journal) as engine:
        rerun = engine.chat_many(requests)
        # The rerun sends only what failed; everything answered the first time comes from the journal.
        assert engine.stats()["from_journal"] == 200 - len(failed)
    assert sum(r.ok for r in rerun) >= sum(r.ok for r in results)
    assert max(server.log.answered.values()) == 1


def test_length_and_content_filter_are_failures_and_bad_schema_is_reasked(openai_server):
    openai_server.script(["length", "bad_schema", None])
    with LLMEngine(settings_for(openai_server, concurrency=1)) as engine:
        cut, reasked = engine.chat_many([ask(1), ask(2)])
        assert engine.stats()["reasks"] == 1 and engine.stats()["failures"] == 1
    assert not cut.ok and "finish_reason=length" in cut.error
    assert reasked.ok and isinstance(reasked.parsed, Pair)


def test_reask_shows_the_model_its_error_and_the_schema(openai_server):
    from openai_server import default_handler

    bodies: list[dict[str, Any]] = []
    openai_server.handler = lambda body: bodies.append(body) or default_handler(body)
    openai_server.script(["bad_schema"])
    with LLMEngine(settings_for(openai_server)) as engine:
        assert engine.chat_many([ask(1)])[0].ok
    reask = bodies[1]["messages"]
    assert reask[-2] == {"role": "assistant", "content": '{"unexpected": "field"}'}
    assert "does not match the schema" in reask[-1]["content"] and '"negatives"' in reask[-1]["content"]


def test_schema_violation_twice_is_a_failed_row_with_the_reason(openai_server):
    openai_server.script(["bad_schema", "bad_schema"])
    with LLMEngine(settings_for(openai_server, concurrency=1)) as engine:
        (result,) = engine.chat_many([ask(1)])
    assert not result.ok and "does not match the schema" in result.error and "query" in result.error


def test_empty_text_answer_is_asked_again(openai_server):
    openai_server.script(["empty"])
    with LLMEngine(settings_for(openai_server)) as engine:
        (result,) = engine.chat_many([ask(1, model=None)])
    assert result.ok and result.content.startswith("answer ")


def test_llama_cpp_server_falls_back_to_json_object_schema_and_remembers(make_openai_server, tmp_path):
    server = make_openai_server(style="llama_cpp")
    journal = tmp_path / "_journal.sqlite"
    with LLMEngine(settings_for(server, concurrency=1), journal=journal) as engine:
        assert all(r.ok for r in engine.chat_many([ask(i) for i in range(5)]))
    refused = server.log.faults  # nothing injected: the refusals came from the style
    assert not refused
    first_log = dict(server.log.received)
    assert sum(first_log.values()) == 2 + 5  # two strikes of json_schema (500), then five answers
    # A new process (no in-memory memory) reads the choice from the journal: no json_schema attempt again.
    from synth.llm import engine as engine_module

    engine_module._REMEMBERED_FORMS.clear()
    with LLMEngine(settings_for(server, concurrency=1), journal=journal) as engine:
        assert all(r.ok for r in engine.chat_many([ask(i) for i in range(5, 8)]))
    assert server.log.total("chat") == 7 + 3


def test_server_without_response_format_gets_the_schema_in_the_prompt(make_openai_server):
    server = make_openai_server(style="text_only")
    with LLMEngine(settings_for(server, concurrency=1)) as engine:
        results = engine.chat_many([ask(i) for i in range(3)])
    assert all(r.ok and isinstance(r.parsed, Pair) for r in results)
    assert server.log.total("chat") == 3 + 3  # json_schema and json_object_schema refused with 400, then prompt


def test_explicit_form_is_sent_as_configured(make_openai_server):
    server = make_openai_server(style="llama_cpp")
    with LLMEngine(settings_for(server, structured="json_object_schema")) as engine:
        assert engine.chat_many([ask(1)])[0].ok
    assert server.log.total("chat") == 1


def test_wrong_key_stops_at_once_with_the_message_but_not_the_key(make_openai_server):
    server = make_openai_server(api_key="right-key")
    secret = "sk-wrong-0123456789abcdef"
    settings = LLMSettings.from_options({"base_url": server.base_url, "api_key": secret, "model": "m",
                                         "concurrency": 4})
    with LLMEngine(settings) as engine, pytest.raises(FatalAPIError) as caught:
        engine.chat_many([ask(i) for i in range(50)])
    message = str(caught.value)
    assert "HTTP 401" in message and "Incorrect API key provided" in message and secret not in message
    assert server.log.total() <= 4  # the requests already in flight, no retries


def test_429_with_retry_after_pauses_the_whole_engine(make_openai_server):
    server = make_openai_server(retry_after=0.5)
    server.script(["rate_limit"])
    with LLMEngine(settings_for(server, concurrency=1)) as engine:
        results = engine.chat_many([ask(i) for i in range(4)])
        assert engine.stats()["rate_limited"] == 1 and engine.stats()["retries"] == 1
    assert all(r.ok for r in results)
    times = server.log.times
    assert times[1] - times[0] >= 0.45  # the next request (any request) waited for Retry-After


def test_client_rpm_budget_keeps_under_a_server_limit(make_openai_server):
    server = make_openai_server(rpm=1200, rpm_window=2.0)  # 40 requests per sliding 2 seconds
    with LLMEngine(settings_for(server, rpm=1200, concurrency=32)) as engine:
        started = time.monotonic()
        results = engine.chat_many([ask(i, model=None) for i in range(80)])
        elapsed = time.monotonic() - started
    assert all(r.ok for r in results)
    assert server.log.faults["server_rpm_limit"] <= 4  # a handful, from timing jitter on a loaded machine
    assert 3.5 <= elapsed <= 6.0  # 80 requests at 20/s


def test_without_a_budget_the_engine_adopts_the_servers_advertised_limit(make_openai_server):
    server = make_openai_server(rpm=1200, rpm_window=1.0)
    with LLMEngine(settings_for(server, concurrency=32)) as engine:
        results = engine.chat_many([ask(i, model=None) for i in range(60)])
        assert engine.limiter.requests.per_minute == 1200
    assert all(r.ok for r in results)
    # Only the first burst, sent before the server's headers were seen, runs into the limit.
    assert server.log.faults["server_rpm_limit"] < 60


def test_token_budget_paces_requests(openai_server):
    text = "word " * 400  # about 500 prompt tokens
    requests = [ChatRequest([{"role": "user", "content": f"{i} {text}"}], params={"max_tokens": 10}) for i in range(6)]
    with LLMEngine(settings_for(openai_server, tpm=6000 * 6, concurrency=8)) as engine:  # ~600 tokens/s after 1s burst
        started = time.monotonic()
        assert all(r.ok for r in engine.chat_many(requests))
        elapsed = time.monotonic() - started
    assert elapsed >= 2.5


def test_embeddings_go_through_the_same_engine_and_journal(make_openai_server, tmp_path):
    server = make_openai_server(embedding_dim=8)
    server.script(["server_error"])
    bodies = [{"model": "e", "input": [f"text {i}", f"other {i}"]} for i in range(5)]
    journal = tmp_path / "j.sqlite"
    with LLMEngine(settings_for(server), journal=journal) as engine:
        results = engine.post_json_many("/embeddings", bodies)
        assert engine.stats()["retries"] == 1
    vectors = [item["embedding"] for r in results for item in r.data["data"]]
    assert len(vectors) == 10 and all(abs(sum(v * v for v in vec) - 1) < 1e-4 for vec in vectors)
    with LLMEngine(settings_for(server), journal=journal) as engine:
        assert [r.data for r in engine.post_json_many("/embeddings", bodies)] == [r.data for r in results]
    assert server.log.total("embeddings") == 6


def test_model_defaults_to_the_one_the_endpoint_serves(openai_server):
    models: list[str] = []
    openai_server.handler = lambda body: models.append(body["model"]) or "fine"
    settings = LLMSettings.from_options({"base_url": openai_server.base_url, "api_key": openai_server.api_key})
    with LLMEngine(settings) as engine:
        assert engine.chat_many([ask(1, model=None)])[0].content == "fine"
    assert models == ["test-model"]


def test_cost_from_the_price_table(openai_server):
    prices = {"m": {"input": 1.0, "output": 2.0}}
    with LLMEngine(settings_for(openai_server, prices=prices)) as engine:
        engine.chat_many([ask(1)])
        stats = engine.stats()
    expected = (stats["prompt_tokens"] * 1.0 + stats["completion_tokens"] * 2.0) / 1e6
    assert stats["cost_usd"] == pytest.approx(expected, rel=1e-3) and stats["cost_usd"] > 0


def test_per_part_stats_since_a_snapshot(openai_server):
    with LLMEngine(settings_for(openai_server)) as engine:
        engine.chat_many([ask(1)])
        before = engine.stats()
        engine.chat_many([ask(2), ask(3)])
        assert engine.stats(since=before)["requests"] == 2


def test_settings_from_environment_and_bad_values(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://example.invalid/v1/")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    settings = LLMSettings.from_options({"model": "x", "concurrency": None})
    assert settings.base_url == "http://example.invalid/v1" and settings.api_key == "sk-env"
    assert settings.concurrency == 64 and "sk-env" not in repr(settings) and "api_key" not in settings.public()
    with pytest.raises(ConfigError, match="structured"):
        LLMSettings.from_options({"structured": "xml"})
    with pytest.raises(ConfigError, match="concurrency"):
        LLMSettings.from_options({"concurrency": 0})
    with pytest.raises(ConfigError, match="rpm must be a number, got 'fast'"):
        LLMSettings.from_options({"rpm": "fast"})
    assert LLMSettings.from_options({"rpm": "120", "max_tokens": 64.0}).rpm == 120.0
    monkeypatch.delenv("OPENAI_BASE_URL")
    assert LLMSettings.from_options({}).base_url == "https://api.openai.com/v1"  # a key alone means OpenAI


def test_journal_shared_by_two_processes_stays_consistent(tmp_path):
    import subprocess
    import sys

    journal = tmp_path / "j.sqlite"
    script = (
        "import sys\nfrom synth.llm.journal import Journal\nj = Journal(sys.argv[1], 's')\n"
        "for i in range(300):\n    j.put(f'{sys.argv[2]}-{i}', {'content': 'x' * 200, 'i': i})\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(journal), name]) for name in ("a", "b")]
    assert all(p.wait(60) == 0 for p in procs)
    db = sqlite3.connect(journal)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 600


def test_journal_file_holds_answers_not_keys(openai_server, tmp_path):
    journal = tmp_path / "_journal.sqlite"
    with LLMEngine(settings_for(openai_server), journal=journal) as engine:
        engine.chat_many([ask(1)])
    rows = sqlite3.connect(journal).execute("SELECT value FROM responses").fetchall()
    assert len(rows) == 1 and json.loads(rows[0][0])["content"].startswith("{")


def test_no_endpoint_is_a_one_line_config_error():
    with pytest.raises(ConfigError, match="no LLM endpoint configured"):
        LLMEngine(LLMSettings())


def test_sync_api_inside_a_running_loop_points_to_the_async_one(openai_server):
    import asyncio

    async def main() -> None:
        with LLMEngine(settings_for(openai_server)) as engine:
            with pytest.raises(RuntimeError, match="achat_many"):
                engine.chat_many([ask(1)])
            results = await engine.achat_many([ask(1)])
            await engine.aclose()
            assert results[0].ok

    asyncio.run(main())


def test_unreachable_endpoint_fails_rows_after_bounded_attempts(tmp_path):
    settings = LLMSettings.from_options({"base_url": "http://127.0.0.1:9/v1", "model": "m", "max_attempts": 2,
                                         "timeout": 1.0})
    with LLMEngine(settings, journal=tmp_path / "j.sqlite") as engine:
        results = engine.chat_many([ask(1), ask(2)])
        assert engine.stats()["failures"] == 2 and engine.stats()["retries"] == 2
    assert all(not r.ok and "connection failed" in r.error for r in results)
    assert Path(tmp_path / "j.sqlite").exists()


def test_request_bar_joins_the_stage_bar_with_rate_eta_and_tokens(openai_server):
    import io

    from rich.console import Console
    from rich.progress import Progress

    from synth.progress import shared_progress

    descriptions: list[str] = []

    class RecordingProgress(Progress):
        def update(self, task_id: Any, **fields: Any) -> None:
            if "description" in fields:
                descriptions.append(fields["description"])
            super().update(task_id, **fields)

    stage_bar = RecordingProgress(console=Console(file=io.StringIO(), force_terminal=True))
    with stage_bar, shared_progress(stage_bar), LLMEngine(settings_for(openai_server), stage="paraphrase") as engine:
        engine.chat_many([ask(i) for i in range(5)])
        assert not stage_bar.tasks  # the request bar is removed when its batch is done
    assert any(d.startswith("paraphrase") and "requests/s" in d and "ETA" in d and "tok" in d for d in descriptions)


def test_extra_headers_and_body_pass_through_but_stay_out_of_public_settings(openai_server):
    bodies: list[dict[str, Any]] = []
    openai_server.handler = lambda body: bodies.append(body) or "fine"
    settings = settings_for(openai_server, extra_headers={"X-Tenant": "team-a"}, extra_body={"top_p": 0.5},
                            seed=11)
    with LLMEngine(settings) as engine:
        engine.chat_many([ChatRequest([{"role": "user", "content": "hi"}], params={"stop": ["\n"]})])
    assert openai_server.log.last_headers["X-Tenant"] == "team-a"
    assert bodies[0]["top_p"] == 0.5 and bodies[0]["seed"] == 11 and bodies[0]["stop"] == ["\n"]
    assert settings.public()["extra_headers"] == ["X-Tenant"]


def test_loopback_server_speaks_the_real_openai_sdk(openai_server):
    from openai import AuthenticationError, OpenAI

    client = OpenAI(base_url=openai_server.base_url, api_key=openai_server.api_key, max_retries=0)
    answer = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content.startswith("answer ") and answer.usage.prompt_tokens > 0
    vectors = client.embeddings.create(model="e", input=["a", "b"])
    assert len(vectors.data) == 2 and len(vectors.data[0].embedding) == 32
    assert [m.id for m in client.models.list()] == ["test-model"]
    with pytest.raises(AuthenticationError):
        OpenAI(base_url=openai_server.base_url, api_key="wrong", max_retries=0).models.list()


def test_journal_lookups_inside_a_loop_see_pending_answers_share_one_query_and_keep_one_commit(tmp_path):
    import asyncio

    from synth.llm.journal import Journal

    journal = Journal(tmp_path / "j.sqlite", "s")
    other = sqlite3.connect(tmp_path / "j.sqlite")
    statements: list[str] = []

    async def answers_then_lookups() -> tuple[dict, int, list]:
        journal.put("a", {"content": "first"})
        found = journal.get_many(["a", "b"])  # read back before its commit, and not committed by the lookup
        journal.put("b", {"content": "second"})
        committed = other.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
        await asyncio.sleep(0)
        journal._db.set_trace_callback(statements.append)
        looked_up = await asyncio.gather(*(journal.get(key) for key in ("a", "b", "c", "d")))
        return found, committed, looked_up

    found, committed_meanwhile, looked_up = asyncio.run(answers_then_lookups())
    assert found == {"a": {"content": "first"}} and committed_meanwhile == 0
    assert other.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 2  # both in the iteration's commit
    assert looked_up == [{"content": "first"}, {"content": "second"}, None, None]
    assert sum(s.startswith("SELECT key, value") for s in statements) == 1  # four lookups of one iteration, one query
    assert journal.get_many(["a", "b"])["b"] == {"content": "second"}
    journal.close()


def test_journal_key_and_body_are_the_canonical_json_of_what_decides_the_answer(openai_server, tmp_path):
    """The key is sha256 of the canonical JSON of (chat, model, messages, params, schema), as journals of earlier
    versions hold it; the body the server parses carries the same messages (non-ASCII intact) and the schema."""
    import hashlib

    bodies: list[dict[str, Any]] = []
    answer = openai_server.handler

    def record(body: dict[str, Any]) -> str:
        bodies.append(body)
        return answer(body)

    openai_server.handler = record
    request = ChatRequest([{"role": "user", "content": "Schreibe ein Paar über 北京 — «quotes» \\ \"x\"."}], Pair)
    with LLMEngine(settings_for(openai_server, structured="json_schema"), journal=tmp_path / "j.sqlite") as engine:
        assert engine.chat_many([request])[0].ok
    sent = bodies[0]
    assert sent["messages"] == request.messages
    assert sent["response_format"]["json_schema"]["schema"] == Pair.model_json_schema()
    params = {k: v for k, v in sent.items() if k not in ("model", "messages", "response_format")}
    parts = ["chat", sent["model"], request.messages, params, Pair.model_json_schema()]
    text = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    keys = [k for (k,) in sqlite3.connect(tmp_path / "j.sqlite").execute("SELECT key FROM responses")]
    assert keys == [hashlib.sha256(text.encode()).hexdigest()]


def test_a_shared_request_whose_sender_is_cancelled_is_sent_again_for_the_other_caller(make_openai_server):
    import asyncio

    server = make_openai_server(latency=0.3)
    with LLMEngine(settings_for(server), progress=False) as engine:

        async def two_callers() -> tuple[bool, Any]:
            first = asyncio.ensure_future(engine.achat(ask(1)))
            await asyncio.sleep(0.05)  # on its way
            second = asyncio.ensure_future(engine.achat(ask(1)))  # the same request: shares the first
            await asyncio.sleep(0.05)
            first.cancel()
            result = await second
            return first.cancelled(), result

        cancelled, result = engine.run(two_callers())
    assert cancelled and result.ok and isinstance(result.parsed, Pair)
    assert sum(server.log.answered.values()) == 1  # the cancelled send was dropped; the second caller's answered
