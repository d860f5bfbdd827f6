"""End to end on the real llama-cpp-python server with the bundled SmolLM2 model (synth[llm-local])."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ROOT, SAMPLES, SYNTH
from pydantic import BaseModel

from synth.errors import ConfigError
from synth.llm import ChatRequest, LLMEngine, LLMSettings, local_endpoint_if_needed, local_server
from synth.llm.journal import Journal

needs_local_extra = pytest.mark.skipif(
    local_server.bundled_model_path() is None or not local_server.server_installed(), reason="needs synth[llm-local]")


class Paraphrase(BaseModel):
    paraphrase: str


@pytest.mark.slow
@needs_local_extra
def test_bundled_model_answers_structured_output_that_validates(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    settings = LLMSettings.from_options({"max_tokens": 64, "temperature": 0.0, "seed": 1})
    journal = tmp_path / "_journal.sqlite"
    request = ChatRequest([{"role": "user", "content": "Paraphrase: The cat sat on the mat."}],
                          response_model=Paraphrase)
    with local_endpoint_if_needed(settings) as local:
        assert local.base_url.startswith("http://127.0.0.1:")
        with LLMEngine(local, journal=journal) as engine:
            (result,) = engine.chat_many([request])
            assert result.ok and isinstance(result.parsed, Paraphrase) and result.parsed.paraphrase
            # llama-cpp-python refuses OpenAI's json_schema form: auto fell back to its own and remembered it.
            assert engine.pool.states[0].forms.current == "json_object_schema"
        with LLMEngine(local, journal=journal) as engine:
            assert engine.chat_many([request])[0].from_journal and engine.stats()["requests"] == 0
    assert "tiny demo model" in capsys.readouterr().err


def test_without_endpoint_or_local_extra_the_error_says_how_to_configure(monkeypatch):
    monkeypatch.setattr(local_server, "bundled_model_path", lambda: None)
    with pytest.raises(ConfigError, match="--base-url") as caught, local_endpoint_if_needed(LLMSettings()):
        pass
    assert "\n" not in str(caught.value)


def test_configured_endpoint_is_used_as_is(openai_server):
    settings = LLMSettings.from_options({"base_url": openai_server.base_url})
    with local_endpoint_if_needed(settings) as used:
        assert used is settings


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
@needs_local_extra
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_the_demo_server_stops_when_synth_is_stopped(tmp_path, signum):
    """No llama server is left behind, whether synth is asked to stop or killed outright."""
    ingest = subprocess.run([*SYNTH, "ingest", str(SAMPLES / "qa.jsonl"), "--shape", "qa",
                             "--out", str(tmp_path / "in")], capture_output=True, text=True)
    assert ingest.returncode == 0, ingest.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_BASE_URL", "OPENAI_API_KEY")}
    process = subprocess.Popen([*SYNTH, "paraphrase", str(tmp_path / "in"), "--out", str(tmp_path / "out")],
                               stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    assert process.stderr is not None
    port = None
    for line in process.stderr:
        found = re.search(r"using http://127\.0\.0\.1:(\d+)", line)
        if found:
            port = int(found.group(1))
            break
    assert port is not None and port_open(port)
    process.send_signal(signum)
    process.wait(timeout=60)
    deadline = time.monotonic() + 30
    while port_open(port) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not port_open(port)




@needs_local_extra
def test_the_installed_llama_cpp_uses_no_instructions_of_the_build_host():
    """A native build picks the build host's instructions (AMX on some CPUs) and crashes on other CPUs."""
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode()
    assert "AMX" not in info and "AVX512" not in info, info
    if os.uname().machine == "x86_64":
        assert "AVX2 = 1" in info, info


def test_the_setup_builds_llama_cpp_portably_and_never_from_the_wheel_cache():
    script = (ROOT / ".ci" / "install-llama-cpp").read_text()
    assert "-DGGML_NATIVE=OFF" in script and "-DGGML_AMX_TILE=OFF" in script
    assert "--no-cache-dir" in script and "--no-binary llama-cpp-python" in script
    setup = (ROOT / ".ci" / "setup").read_text().splitlines()
    build = next(i for i, line in enumerate(setup) if "install-llama-cpp" in line)
    extras = next(i for i, line in enumerate(setup) if "llm-local" in line and "pip install" in line)
    assert build < extras  # built first, so the extra finds it installed and never takes a wheel
    cached = subprocess.run([sys.executable, "-m", "pip", "cache", "list", "llama_cpp_python*"],
                            capture_output=True, text=True)
    assert "llama_cpp_python" not in cached.stdout  # nothing a later install could reuse


def children_of(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.mark.slow
@needs_local_extra
def test_a_demo_server_killed_mid_stage_stops_synth_with_the_reason_and_keeps_answers(tmp_path):
    ingest = subprocess.run([*SYNTH, "ingest", str(SAMPLES / "qa.jsonl"), "--shape", "qa",
                             "--out", str(tmp_path / "in")], capture_output=True, text=True)
    assert ingest.returncode == 0, ingest.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_BASE_URL", "OPENAI_API_KEY")}
    out = tmp_path / "out"
    process = subprocess.Popen([*SYNTH, "paraphrase", str(tmp_path / "in"), "--out", str(out), "--num", "3"],
                               stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    journal = out / "_journal.sqlite"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if journal.exists() and len(Journal(journal)) >= 1:
            break
        time.sleep(0.5)
    answered = len(Journal(journal))
    assert answered >= 1 and process.poll() is None
    (server,) = children_of(process.pid)
    os.kill(server, signal.SIGKILL)
    killed = time.monotonic()
    _, stderr = process.communicate(timeout=60)
    assert time.monotonic() - killed < 15, stderr[-2000:]  # at once, not after six retries per request
    assert process.returncode == 2, stderr[-2000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: the demo LLM server") and "killed by signal 9 (SIGKILL)" in last, last
    assert "Traceback" not in stderr and len(Journal(journal)) >= answered  # every journaled answer kept
