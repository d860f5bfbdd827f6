"""A run killed with kill -9 resumes without re-sending answered requests; the API key is never written anywhere."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from synth.cli import app
from synth.errors import FatalAPIError
from synth.llm import ChatRequest, LLMEngine, LLMSettings

CHILD = """
import json, sys
from synth.llm import ChatRequest, LLMEngine, LLMSettings
base_url, journal = sys.argv[1], sys.argv[2]
settings = LLMSettings.from_options({"base_url": base_url, "api_key": "test-key", "model": "m", "concurrency": 4})
requests = [ChatRequest([{"role": "user", "content": f"question {i}"}]) for i in range(120)]
with LLMEngine(settings, journal=journal, progress=False) as engine:
    results = engine.chat_many(requests)
    print(json.dumps({"ok": sum(r.ok for r in results), **engine.stats()}))
"""


def run_child(base_url: str, journal: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", CHILD, base_url, str(journal)], stdout=subprocess.PIPE, text=True)


def test_kill_9_then_rerun_sends_only_unanswered_requests(make_openai_server, tmp_path):
    server = make_openai_server(latency=0.03)
    journal = tmp_path / "_journal.sqlite"
    child = run_child(server.base_url, journal)
    deadline = time.monotonic() + 60
    while sum(server.log.answered.values()) < 40 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL
    saved = sqlite3.connect(journal).execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    assert 30 <= saved < 120  # answers still on the wire at the kill were never received
    rerun = run_child(server.base_url, journal)
    out, _ = rerun.communicate(timeout=120)
    stats = json.loads(out)
    assert stats["ok"] == 120 and stats["from_journal"] == saved and stats["requests"] == 120 - saved
    # At most the few requests in flight at the kill were answered by the server but never received.
    assert sum(server.log.answered.values()) <= 120 + 4


def test_api_key_never_reaches_files_messages_or_help(make_openai_server, tmp_path):
    secret = "sk-test-SECRET-0123456789"
    server = make_openai_server(api_key=secret, faults={"server_error": 0.2, "rate_limit": 0.1}, seed=3,
                                retry_after=0.01)
    out = tmp_path / "run"
    settings = LLMSettings.from_options({"base_url": server.base_url, "api_key": secret, "model": "m"})
    with LLMEngine(settings, journal=out / "_journal.sqlite", stage="t") as engine:
        results = engine.chat_many([ChatRequest([{"role": "user", "content": f"q {i}"}]) for i in range(30)])
        (out / "stats.json").write_text(json.dumps({"settings": settings.public(), "stats": engine.stats()}))
    assert sum(r.ok for r in results) > 20
    errors = [r.error for r in results if r.error]
    wrong = LLMSettings.from_options({"base_url": server.base_url, "api_key": secret + "-old", "model": "m"})
    with LLMEngine(wrong) as engine, pytest.raises(FatalAPIError) as caught:
        engine.chat_many([ChatRequest([{"role": "user", "content": "x"}])])
    assert secret not in str(caught.value) and secret not in repr(settings) and all(secret not in e for e in errors)
    written = [p for p in out.rglob("*") if p.is_file()]
    assert written and all(secret.encode() not in p.read_bytes() for p in written)

    for command in ("paraphrase", "mine", "filter"):  # every command with the shared LLM flags
        help_text = CliRunner().invoke(app, [command, "--help"], env={"OPENAI_API_KEY": secret, "COLUMNS": "200"})
        assert "--api-key" in help_text.output and secret not in help_text.output
