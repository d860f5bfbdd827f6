"""A server synth started itself dies mid-stage: the run stops at once with the reason, answers kept (exit 2)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from synth.llm import ChatRequest, LLMEngine, LLMSettings, liveness
from synth.llm.journal import Journal
from synth.llm.local_server import exit_description

SERVER = Path(__file__).resolve().parent / "openai_server.py"


def start_server_process(latency: float) -> tuple[subprocess.Popen[str], str]:
    options = '{"api_key": null}'
    process = subprocess.Popen([sys.executable, str(SERVER), "--latency", str(latency), "--options", options],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    port = int(process.stdout.readline().split()[1])
    return process, f"http://127.0.0.1:{port}/v1"


def test_a_killed_server_stops_the_engine_at_once_and_keeps_every_answer(tmp_path):
    process, base_url = start_server_process(latency=0.2)
    journal = tmp_path / "_journal.sqlite"
    liveness.watch(base_url, lambda: f"server {exit_description(process.returncode)}"
                   if process.poll() is not None else None)
    settings = LLMSettings.from_options({"base_url": base_url, "model": "m", "concurrency": 4, "max_attempts": 6})
    requests = [ChatRequest([{"role": "user", "content": f"question {i}"}]) for i in range(200)]
    killer = threading.Timer(1.0, process.send_signal, [signal.SIGKILL])
    killer.start()
    started = time.monotonic()
    try:
        with pytest.raises(liveness.EndpointDied) as caught, LLMEngine(settings, journal=journal,
                                                                       progress=False) as engine:
            engine.chat_many(requests)
    finally:
        liveness.unwatch(base_url)
        killer.cancel()
        process.kill()
        process.wait()
    assert time.monotonic() - started < 10  # no retry storm: six attempts with backoff would take longer
    assert caught.value.exit_code == 2
    assert "killed by signal 9 (SIGKILL)" in str(caught.value) and "\n" not in str(caught.value)
    saved = len(Journal(journal))
    assert 4 <= saved < 200  # answered before the kill (about 1 s / 0.2 s x 4 in flight), each journaled
    assert engine.stats()["answered"] == saved


def test_exit_descriptions_name_the_code_or_the_signal():
    assert exit_description(3) == "exited with code 3"
    assert exit_description(-9) == "was killed by signal 9 (SIGKILL)"
    assert exit_description(-11) == "was killed by signal 11 (SIGSEGV)"


def test_an_unreachable_endpoint_is_not_counted_as_requests_sent(tmp_path):
    process, base_url = start_server_process(latency=0.0)
    process.kill()
    process.wait()
    settings = LLMSettings.from_options({"base_url": base_url, "model": "m", "max_attempts": 2})
    with LLMEngine(settings, progress=False) as engine:
        (result,) = engine.chat_many([ChatRequest([{"role": "user", "content": "q"}])])
        stats = engine.stats()
    assert not result.ok and "connection failed" in (result.error or "")
    assert stats["requests"] == 0 and stats["unreachable"] == 2 and stats["answered"] == 0


def test_a_stage_whose_llm_answered_nothing_fails_and_says_so(tmp_path, capsys):
    from synth.stage import StageSummary
    from synth.summary import exit_code, print_summary

    nothing = StageSummary("paraphrase", tmp_path, stats={"llm_requests": 0, "llm_unreachable": 12,
                                                          "llm_answered": 0, "llm_from_journal": 0})
    assert exit_code(nothing) == 1
    print_summary(nothing)
    assert "LLM answers" in capsys.readouterr().err
    answered = StageSummary("paraphrase", tmp_path, stats={"llm_requests": 3, "llm_answered": 0,
                                                           "llm_from_journal": 5})
    assert exit_code(answered) == 0  # every answer from the journal is still an answer
    assert exit_code(StageSummary("mine", tmp_path)) == 0  # a stage without an LLM
