"""Passages (a document's chunks) through the LLM stages: querygen makes retrieval records of them, the others pass
them through, against the loopback server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pipeline_fixtures import passage, write_stage
from synthesis_fixtures import RETRIEVAL_ROWS, FakeModel
from typer.testing import CliRunner

from synth.cli import app
from synth.store import iter_rows, read_manifest

runner = CliRunner()
PASSAGES = [passage(row["positive"], f"doc-{i // 2}", i % 2, lang=row["lang"]) for i, row in enumerate(RETRIEVAL_ROWS)]


@pytest.fixture
def fake(make_openai_server: Any) -> tuple[Any, FakeModel]:
    model = FakeModel()
    return make_openai_server(handler=model), model


def run(command: str, source: Path, out: Path, server: Any, *extra: str) -> Any:
    result = runner.invoke(app, [command, str(source), "--out", str(out), "--base-url", server.base_url,
                                 "--api-key", server.api_key, "--model", server.model, "--max-attempts", "2", *extra])
    assert result.exit_code == 0, result.output
    return result


def test_querygen_turns_passages_into_retrieval_records_of_their_document(fake, tmp_path):
    server, _ = fake
    source = write_stage(tmp_path / "docs", [PASSAGES])
    out = tmp_path / "querygen"
    run("querygen", source, out, server, "-n", "2")
    kept = list(iter_rows(out))
    passages = [r for r in kept if r["task"] == "passage"]
    made = [r for r in kept if r["task"] == "retrieval"]
    assert passages == list(iter_rows(source))  # the passages stay, for mining's corpus and the split
    assert len(made) == 2 * len(PASSAGES)
    by_id = {p["id"]: p for p in PASSAGES}
    for row in made:
        parent = by_id[row["parent_id"]]
        assert row["origin"] == "querygen" and row["positive"] == parent["text"]
        assert row["document_id"] == parent["document_id"] and row["query"].strip()
    assert sorted(p.name for p in out.glob("*/part-*.parquet")) == ["part-00000.parquet"] * 2
    assert read_manifest(out)["totals"]["rows_out"] == len(PASSAGES) + len(made)


@pytest.mark.parametrize(("command", "extra"), [("paraphrase", ["--drop-source"]), ("augment", ["--drop-source"]),
                                               ("llm-negatives", [])])
def test_the_other_llm_stages_pass_passages_through_without_a_request(fake, tmp_path, command, extra):
    server, model = fake
    source = write_stage(tmp_path / "docs", [PASSAGES])
    out = tmp_path / command
    run(command, source, out, server, *extra)
    assert list(iter_rows(out)) == list(iter_rows(source))
    assert read_manifest(out)["totals"]["stats"]["records_not_applicable"] == len(PASSAGES)
    assert model.bodies == []
