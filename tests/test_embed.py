"""Embedding cache, instruction formatting, the local MiniLM backend and pair scoring."""

from __future__ import annotations

import json

import numpy as np
import pytest

from synth.embed import CachedEmbedder, build_embedder
from synth.embed.cache import EmbeddingCache, namespace, text_keys
from synth.embed.instructions import QZHOU_QUERY_FORMAT, check_query_format, format_query, resolve_query_format
from synth.embed.scoring import score_pairs
from synth.errors import ConfigError
from tests.embed_fixtures import CountingEmbedder, minilm_path


def test_query_format_follows_qzhou_and_documents_get_none():
    expected = "Instruct: Given a query\nQuery:what is rust"
    assert format_query("what is rust", "Given a query", QZHOU_QUERY_FORMAT) == expected
    assert format_query("what is rust", "", QZHOU_QUERY_FORMAT) == "what is rust"
    assert format_query("q", "task", "{query}") == "q"
    with pytest.raises(ConfigError, match="must contain"):
        check_query_format("Instruct: {task}")


def test_the_default_query_format_follows_what_the_model_declares(tmp_path):
    declared = tmp_path / "qwen3-like"
    declared.mkdir()
    prompt = "Instruct: Given a web search query, retrieve relevant passages\nQuery:"
    (declared / "config_sentence_transformers.json").write_text(
        json.dumps({"prompts": {"query": prompt, "document": ""}, "default_prompt_name": None}))
    assert resolve_query_format("auto", str(declared)) == prompt + "{query}"
    assert format_query("rust {x}", "ignored", resolve_query_format(None, str(declared))) == prompt + "rust {x}"
    only_default = tmp_path / "default-prompt"
    only_default.mkdir()
    (only_default / "config_sentence_transformers.json").write_text(
        json.dumps({"prompts": {"retrieval": "query: {not a field}"}, "default_prompt_name": "retrieval"}))
    assert format_query("q", None, resolve_query_format("auto", str(only_default))) == "query: {not a field}q"
    assert resolve_query_format("auto", minilm_path()) == "{query}"  # MiniLM declares no prompt: bare queries
    assert resolve_query_format("auto", "no/such-model") == "{query}"
    assert resolve_query_format("qzhou", minilm_path()) == QZHOU_QUERY_FORMAT
    assert resolve_query_format("Q: {query}", str(declared)) == "Q: {query}"  # an explicit format wins
    with pytest.raises(ConfigError, match="auto, qzhou, bare"):
        resolve_query_format("nonsense", None)


def test_cache_round_trip_survives_reopen(tmp_path):
    cache = EmbeddingCache(tmp_path, "model-a")
    keys = text_keys(["a", "b", "c"])
    vectors = np.eye(3, dtype=np.float32)
    cache.put(keys[:2], vectors[:2])
    cache.put(keys[2:], vectors[2:])
    reopened = EmbeddingCache(tmp_path, "model-a")
    found = reopened.find(text_keys(["c", "x", "a"]))
    assert found[1] == -1 and (found[[0, 2]] >= 0).all()
    np.testing.assert_array_equal(reopened.gather(found[[0, 2]]), vectors[[2, 0]])
    assert len(EmbeddingCache(tmp_path, "model-b")) == 0  # each model has its own vector space
    assert namespace("org/model-a") != namespace("other/model-a")


def test_cache_ignores_a_half_written_shard(tmp_path):
    cache = EmbeddingCache(tmp_path, "m")
    cache.put(text_keys(["a"]), np.ones((1, 4), dtype=np.float32))
    (cache.directory / "deadbeef.vectors.npy").write_bytes(b"partial")  # no keys file: never finished
    assert len(EmbeddingCache(tmp_path, "m")) == 1


def test_cache_refuses_a_dimension_change(tmp_path):
    EmbeddingCache(tmp_path, "m").put(text_keys(["a"]), np.ones((1, 4), dtype=np.float32))
    with pytest.raises(ConfigError, match="dimension 4"):
        EmbeddingCache(tmp_path, "m").put(text_keys(["b"]), np.ones((1, 8), dtype=np.float32))


def test_cached_embedder_dedupes_and_never_embeds_twice(tmp_path):
    backend = CountingEmbedder()
    embedder = CachedEmbedder(backend, EmbeddingCache(tmp_path, backend.model_id), flush_texts=2)
    first = embedder.encode(["x y", "y z", "x y", "z w", "w"])
    assert backend.texts_seen == sorted(set(backend.texts_seen), key=backend.texts_seen.index)
    assert len(backend.texts_seen) == 4 and backend.calls == 2  # 4 unique texts, flushed 2 at a time
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(first[0], first[2])
    again = CachedEmbedder(backend, EmbeddingCache(tmp_path, backend.model_id))
    np.testing.assert_array_equal(again.encode(["z w", "x y"]), first[[3, 0]])
    assert len(backend.texts_seen) == 4 and again.stats.cache_hits == 2


def test_queries_and_documents_are_cached_apart(tmp_path):
    backend = CountingEmbedder()
    embedder = CachedEmbedder(backend, EmbeddingCache(tmp_path, backend.model_id), QZHOU_QUERY_FORMAT)
    embedder.encode_documents(["rust compiler"])
    embedder.encode_queries(["rust compiler"], ["Find docs"])
    assert backend.texts_seen == ["rust compiler", "Instruct: Find docs\nQuery:rust compiler"]


def test_minilm_scores_pairs_through_the_cache(tmp_path):
    options = {"embed_model": minilm_path(), "embed_cache": str(tmp_path), "query_format": "{query}"}
    embedder = build_embedder(options)
    queries = ["a text editor for programmers", "a text editor for programmers"]
    docs = ["Vim is a highly configurable text editor.", "Recipes for chocolate cake."]
    scores = score_pairs(embedder, queries, docs, ["", ""])
    assert scores.shape == (2,) and scores[0] > scores[1] + 0.3
    assert embedder.stats.embedded == 3  # the repeated query once
    again = build_embedder(options)
    np.testing.assert_allclose(score_pairs(again, queries, docs, ["", ""]), scores, rtol=1e-6)
    assert again.stats.embedded == 0 and again.backend._model is None  # the model was never even loaded


def test_bf16_vectors_agree_with_fp32():
    from synth.embed.local import LocalEmbedder

    texts = ["apt is the package manager of Debian", "a fast image viewer for X11 " * 20, "zsh"]
    exact = LocalEmbedder(minilm_path(), precision="fp32", backend="torch").embed(texts)
    fast_embedder = LocalEmbedder(minilm_path(), precision="bf16")
    fast = fast_embedder.embed(texts)
    assert fast_embedder.precision == "bf16"
    assert np.einsum("ij,ij->i", exact, fast).min() >= 0.999


def test_unknown_embedder_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="embedder must be"):
        build_embedder({"embedder": "magic", "embed_model": "x", "embed_cache": str(tmp_path)})
    with pytest.raises(ConfigError, match="embed_precision must be"):
        build_embedder({"embed_model": "x", "embed_precision": "int4", "embed_cache": str(tmp_path)})
    with pytest.raises(ConfigError, match="embed_backend must be"):
        build_embedder({"embed_model": "x", "embed_backend": "tensorrt", "embed_cache": str(tmp_path)})
