"""Augment's embedding band with each embedder, through the CLI against loopback servers: the band's verdicts are
the cosines an embedder computes for the source and each output, whichever backend and however the check waits."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from typing import Any

import pytest
from helpers import synth_process
from synthesis_fixtures import CLS_ROWS, RETRIEVAL_ROWS, FakeModel, write_input
from typer.testing import CliRunner

from synth.cli import app
from synth.embed import build_embedder
from synth.embed.cache import EmbeddingCache
from synth.schema import Task
from synth.store import iter_rejects, iter_rows
from synth.synthesis.augment import joined
from synth.synthesis.checks import check_similarity_band

runner = CliRunner()
BAND_RULES = {"off_topic", "no_topic_shift"}


@pytest.fixture
def records(tmp_path: Path) -> Path:
    """English and Chinese retrieval triples and CLS examples, as ingest writes them."""
    write_input(tmp_path / "in", Task.RETRIEVAL, RETRIEVAL_ROWS)
    return write_input(tmp_path / "in", Task.CLS, CLS_ROWS)


def augment(records: Path, out: Path, chat: Any, *extra: str) -> Any:
    return runner.invoke(app, ["augment", str(records), "--out", str(out), "--base-url", chat.base_url, "--api-key",
                               chat.api_key, "--model", chat.model, "-n", "2", "--max-tries", "2", *extra])


def api_embedder(embed_base_url: str, cache: Path, tmp_path: Path) -> list[str]:
    """The flags (and the config file, for `embed_base_url`) of an API embedder on `embed_base_url`."""
    config = tmp_path / "synth.toml"
    config.write_text(f'[augment]\nembed_base_url = "{embed_base_url}"\n', encoding="utf-8")
    return ["--embedder", "api", "--embed-model", "emb", "--embed-cache", str(cache), "--config", str(config)]


def compared_texts(row_or_record: dict[str, Any]) -> str:
    """What the band compares of a record or an output: a triple's query and positive, or a CLS text."""
    if "query" in row_or_record:
        return joined(row_or_record["query"], row_or_record["positive"])
    return row_or_record["text"]


def band_verdicts(out: Path, sources: dict[str, dict[str, Any]], options: dict[str, Any]) -> tuple[int, int]:
    """Every kept output's cosine to its source is inside the band, and every band reject says the cosine an
    embedder built here (synchronously, outside any event loop) computes; returns (kept outputs, band rejects)."""
    embedder, low, high = build_embedder(options), options["low"], options["high"]

    def cosine(left: str, right: str) -> float:
        vectors = embedder.encode_documents([left, right])
        return float(vectors[0] @ vectors[1])

    made = [r for r in iter_rows(out) if r["origin"] == "augment"]
    for row in made:
        parent = sources[row["parent_id"]]
        assert check_similarity_band(cosine(compared_texts(parent), compared_texts(row)), low, high) is None
    banded = [r for r in iter_rejects(out) if r["reason"].startswith("embedding similarity")]
    for reject in banded:
        parent = sources[re.search(r" id (\S+)", reject["location"]).group(1)]
        expected = check_similarity_band(cosine(compared_texts(parent), compared_texts(json.loads(reject["record"]))),
                                         low, high)
        assert (reject["rule"], reject["reason"]) == expected
    embedder.close()
    return len(made), len(banded)


def outcome(out: Path) -> tuple[list[str], list[tuple[str, str, str, str]]]:
    """What a user sees of a run: the rows in order, and the rejects with where, rule and reason."""
    return ([r["id"] for r in iter_rows(out)],
            [(r["location"], r["rule"], r["reason"], r["record"]) for r in iter_rejects(out)])


def test_augment_with_an_api_embedder_checks_the_band_over_http_and_embeds_each_text_once(records,
                                                                                            make_openai_server,
                                                                                            tmp_path):
    chat, embed = make_openai_server(handler=FakeModel()), make_openai_server(latency=0.1)
    cache = tmp_path / "cache"
    # The server's vectors are hashes of the texts: cosines scatter around 0, so this band keeps some and drops both
    # sides.
    band = ["--min-topic-similarity", "0.0", "--max-topic-similarity", "0.2"]
    embedder = api_embedder(embed.base_url, cache, tmp_path)
    first = augment(records, tmp_path / "a", chat, *band, *embedder)
    assert first.exit_code == 0, first.output
    sources = {r["id"]: r for r in iter_rows(records)}
    options = {"embedder": "api", "embed_model": "emb", "embed_base_url": embed.base_url, "embed_cache": cache,
               "low": 0.0, "high": 0.2}
    sent = embed.log.total("embeddings")
    kept, banded = band_verdicts(tmp_path / "a", sources, options)
    assert kept > 0 and banded > 0
    assert {r["rule"] for r in iter_rejects(tmp_path / "a")} >= BAND_RULES
    # Each distinct text (a record's source, an output reaching the band) in a request of its own, once.
    assert sent == len(EmbeddingCache(cache, f"emb@{embed.base_url}")) > 0
    assert json.loads((tmp_path / "a" / "_manifest.json").read_text())["endpoints"][embed.base_url]["requests"] == sent
    assert embed.log.peak_in_flight > 1  # the records' checks wait for their vectors side by side, not in turn
    again = augment(records, tmp_path / "b", chat, *band, *embedder)
    assert again.exit_code == 0, again.output
    assert embed.log.total("embeddings") == sent  # every vector from the cache
    assert outcome(tmp_path / "b") == outcome(tmp_path / "a")


def test_augment_with_the_local_embedder_rejects_by_the_cosines_of_the_model(records, fake_chat, tmp_path):
    out = tmp_path / "out"
    band = ["--min-topic-similarity", "0.05", "--max-topic-similarity", "0.9"]
    result = augment(records, out, fake_chat, *band, "--embedder", "local", "--embed-cache", str(tmp_path / "cache"))
    assert result.exit_code == 0, result.output
    sources = {r["id"]: r for r in iter_rows(records)}
    kept, banded = band_verdicts(out, sources, {"embedder": "local", "embed_cache": tmp_path / "cache",
                                                "low": 0.05, "high": 0.9})
    assert kept > 0 and banded > 0


@pytest.fixture
def fake_chat(make_openai_server: Any) -> Any:
    return make_openai_server(handler=FakeModel())


def closed_port_url() -> str:
    """A loopback URL nothing listens on: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def test_an_unreachable_embedder_fails_the_stage_in_one_line_and_a_rerun_resumes(records, fake_chat,
                                                                                 make_openai_server, tmp_path):
    out, cache = tmp_path / "out", tmp_path / "cache"
    common = ["augment", records, "--out", out, "--base-url", fake_chat.base_url, "--api-key", fake_chat.api_key,
              "--model", fake_chat.model, "-n", "2", "--max-tries", "2", "--max-attempts", "1",
              "--min-topic-similarity", "0.0"]
    failed = synth_process(*common, *api_embedder(closed_port_url(), cache, tmp_path))
    assert failed.returncode == 1, failed.stderr
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "embedding request" in errors[0] and "rerun to resume" in errors[0], failed.stderr
    assert "Traceback" not in failed.stderr and "Unclosed" not in failed.stderr  # no session left to the collector
    assert not list(iter_rows(out))
    answered = fake_chat.log.total("chat")
    assert answered > 0
    embed = make_openai_server()
    resumed = synth_process(*common, *api_embedder(embed.base_url, cache, tmp_path))
    assert resumed.returncode == 0, resumed.stderr
    assert [r for r in iter_rows(out) if r["origin"] == "augment"]
    # What the first run got answered comes from the journal: no chat request was answered twice.
    assert all(count == 1 for (endpoint, _), count in fake_chat.log.answered.items() if endpoint == "chat")
