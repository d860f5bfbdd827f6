"""Shared fixtures: the loopback OpenAI-compatible server (see tests/openai_server.py for its options)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))

from helpers import started_servers
from openai_server import OpenAIServer


@pytest.fixture(autouse=True)
def _forget_structured_forms() -> Iterator[None]:
    """Each test starts without the structured-output forms learnt by earlier ones (a port can be reused)."""
    from synth.llm import engine

    engine._REMEMBERED_FORMS.clear()
    yield


@pytest.fixture
def make_openai_server() -> Iterator[Callable[..., OpenAIServer]]:
    """Factory: `make_openai_server(latency=0.01, faults={...}, style="llama_cpp")` starts a server, stopped after."""
    yield from started_servers(OpenAIServer)


@pytest.fixture
def openai_server(make_openai_server: Callable[..., OpenAIServer]) -> OpenAIServer:
    """A started server with default options: key "test-key", no latency, no faults, OpenAI-style formats."""
    return make_openai_server()


@pytest.fixture
def llm_options(openai_server: OpenAIServer) -> dict[str, Any]:
    """Stage options pointing at the default loopback server (what a stage's `run(options)` receives)."""
    return {"base_url": openai_server.base_url, "api_key": openai_server.api_key, "model": openai_server.model,
            "timeout": 5.0, "max_attempts": 4}


@pytest.fixture(scope="session")
def _s3_endpoint() -> Iterator[str]:
    """moto's S3 server on loopback for the session, its keys in the usual AWS variables (workers inherit them)."""
    moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed (the dev extra has it)")
    from s3_server import KEYS, create_bucket

    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    saved = {key: os.environ.get(key) for key in KEYS}
    os.environ.update(KEYS)
    host, port = server.get_host_and_port()
    create_bucket(f"{host}:{port}")
    yield f"{host}:{port}"
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    server.stop()


@pytest.fixture
def s3_store(_s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A prefix of its own in a bucket of the loopback S3 server; run directories' local copies under tmp_path."""
    from s3_server import S3Store

    monkeypatch.setenv("SYNTH_REMOTE_CACHE", str(tmp_path / "remote-copies"))
    return S3Store(_s3_endpoint, "x").fresh()
