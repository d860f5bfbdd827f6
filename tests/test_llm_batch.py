"""Batch mode (`--llm-mode batch` / `offline`) end to end against the loopback Files and Batches server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from batch_server import BatchServer
from synthesis_fixtures import RETRIEVAL_ROWS, FakeModel, write_input
from typer.testing import CliRunner

from synth.cli import app
from synth.schema import Task
from synth.store import iter_rows

runner = CliRunner()


@pytest.fixture
def make_batch_server() -> Any:
    servers: list[BatchServer] = []

    def make(**options: Any) -> BatchServer:
        server = BatchServer(handler=FakeModel(), **options).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


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
