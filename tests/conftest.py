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
