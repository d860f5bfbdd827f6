"""The ONNX Runtime backend: exact enough, exported once, never used half-written, and `auto` falls back."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from synth.embed import local, onnx
from synth.embed.local import PROBE_TEXTS, LocalEmbedder
from synth.errors import ConfigError
from synth.schema import Task
from synth.store import iter_rows
from tests.embed_fixtures import minilm_path
from tests.test_mine import make_input, mine

TEXTS = [
    "zsh",
    "  apt is the package manager of Debian  ",
    "A free and open-source web browser developed by the Mozilla Foundation, with tabs and extensions.",
    "这是一个用于处理中文文本的分词工具。",
    "开源的网络浏览器，支持标签页和扩展程序，由 Mozilla 基金会开发。",
    "This package contains the shared library, the development headers and the static library. " * 30,  # > 256
    "Vim 是一个高度可配置的文本编辑器 for programmers.",
]


@pytest.fixture(scope="session")
def xdg(tmp_path_factory) -> Path:
    """An XDG cache home with MiniLM exported once for the whole session."""
    home = tmp_path_factory.mktemp("xdg")
    onnx.load_encoder(minilm_path(), PROBE_TEXTS, home / "synth" / "onnx")
    return home


@pytest.fixture
def export_root(xdg, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(xdg))
    return xdg / "synth" / "onnx"


def test_onnx_vectors_agree_with_sentence_transformers(export_root, monkeypatch):
    from sentence_transformers import SentenceTransformer

    exact = SentenceTransformer(minilm_path(), device="cpu").encode(TEXTS, normalize_embeddings=True)
    encoder = onnx.load_encoder(minilm_path(), PROBE_TEXTS, export_root)
    monkeypatch.setattr(onnx, "TOKENS_PER_BATCH", 300)  # the 256-token text alone, the others in batches of 3
    fast = encoder.encode(TEXTS, batch_size=3)  # several batches, sorted by length, put back in order
    cosines = np.einsum("ij,ij->i", exact, fast)
    assert cosines.min() >= 0.999, cosines
    assert encoder.agreement() >= 0.999


def test_export_is_reused_not_redone(export_root, monkeypatch):
    folder = onnx.load_encoder(minilm_path(), PROBE_TEXTS, export_root).folder
    written = (folder / onnx.GRAPH).stat().st_mtime_ns

    def no_export(*args: object) -> None:
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx, "export", no_export)
    assert onnx.load_encoder(minilm_path(), PROBE_TEXTS, export_root).folder == folder
    assert (folder / onnx.GRAPH).stat().st_mtime_ns == written


def test_a_damaged_export_is_never_used_and_is_redone(export_root, tmp_path, monkeypatch):
    source = onnx.load_encoder(minilm_path(), PROBE_TEXTS, export_root).folder
    root = tmp_path / "onnx"
    folder = root / source.name
    shutil.copytree(source, folder)
    graph = folder / onnx.GRAPH
    graph.write_bytes(graph.read_bytes()[: graph.stat().st_size // 2])  # as if cut off mid-write
    with pytest.raises(ConfigError, match="unusable ONNX export"):
        onnx.OnnxEncoder(folder)
    exports = []
    real_export = onnx.export
    monkeypatch.setattr(onnx, "export", lambda *args: exports.append(args) or real_export(*args))
    encoder = onnx.load_encoder(minilm_path(), PROBE_TEXTS, root)
    assert len(exports) == 1 and graph.stat().st_size == (source / onnx.GRAPH).stat().st_size
    assert encoder.agreement() >= 0.999


def test_auto_picks_onnx_on_a_cpu_unless_a_low_precision_is_asked_for(monkeypatch):
    assert local.pick_backend("auto", "cpu", "auto") == "onnx"
    assert local.pick_backend("auto", "cpu", "fp32") == "onnx"
    assert local.pick_backend("auto", "cpu", "bf16") == "torch"
    assert local.pick_backend("auto", "cuda", "fp32") == "torch"
    assert local.pick_backend("torch", "cpu", "fp32") == "torch"
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    assert local.pick_backend("auto", "cpu", "fp32") == "torch"


def test_auto_uses_onnx_and_falls_back_to_torch_without_onnxruntime(export_root, monkeypatch, capsys):
    auto = LocalEmbedder(minilm_path())
    fast = auto.embed(TEXTS)
    assert (auto.backend, auto.precision) == ("onnx", "fp32")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    fallback = LocalEmbedder(minilm_path(), precision="fp32")
    exact = fallback.embed(TEXTS)
    assert fallback.backend == "torch"
    assert np.einsum("ij,ij->i", exact, fast).min() >= 0.999
    with pytest.raises(ConfigError, match=r"synth\[onnx\]"):
        LocalEmbedder(minilm_path(), backend="onnx").embed(["x"])


def test_auto_falls_back_when_the_agreement_check_fails(export_root, monkeypatch, capsys):
    monkeypatch.setattr(local, "MIN_AGREEMENT", 1.01)
    embedder = LocalEmbedder(minilm_path(), precision="fp32")
    embedder.embed(["x"])
    assert embedder.backend == "torch"
    assert "onnx vs torch fp32 agreement" in capsys.readouterr().err
    forced = LocalEmbedder(minilm_path(), backend="onnx")
    forced.embed(["x"])
    assert forced.backend == "onnx"  # asked for explicitly: used, with the cosine on stderr


def test_unsupported_modules_and_pooling_are_one_line_errors():
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense

    model = SentenceTransformer(minilm_path(), device="cpu")
    model[1].pooling_mode = "weightedmean"
    with pytest.raises(ConfigError, match="pooling mode 'weightedmean'"):
        onnx.pooling_settings(model)
    model[1].pooling_mode = "mean"
    model.append(Dense(384, 128))
    with pytest.raises(ConfigError, match="Transformer \\+ Pooling"):
        onnx.pooling_settings(model)
    with pytest.raises(ConfigError, match="embed_backend must be"):
        LocalEmbedder(minilm_path(), backend="tensorrt")
    with pytest.raises(ConfigError, match="needs embed_backend torch"):
        LocalEmbedder(minilm_path(), backend="onnx", precision="bf16")


def test_pooling_picks_the_right_tokens_on_either_padding_side():
    hidden = np.arange(2 * 4 * 1, dtype=np.float32).reshape(2, 4, 1)  # token values 0..3 and 4..7
    right = np.array([[1, 1, 1, 0], [1, 1, 1, 1]])
    left = np.array([[0, 1, 1, 1], [1, 1, 1, 1]])
    assert onnx.pool(hidden, right, ["cls"]).ravel().tolist() == [0, 4]
    assert onnx.pool(hidden, left, ["cls"]).ravel().tolist() == [1, 4]
    assert onnx.pool(hidden, right, ["lasttoken"]).ravel().tolist() == [2, 7]
    assert onnx.pool(hidden, left, ["lasttoken"]).ravel().tolist() == [3, 7]
    assert onnx.pool(hidden, right, ["mean", "max"]).tolist() == [[1, 2], [5.5, 7]]


def test_mine_with_the_onnx_backend_finds_the_same_negatives_as_torch(export_root, tmp_path):
    src = make_input(tmp_path / "in")
    negatives = {}
    for backend in ("onnx", "torch"):
        out = tmp_path / backend
        mine(str(src), "--out", str(out), "--embed-cache", str(tmp_path / f"cache-{backend}"), "--embed-backend",
             backend, "--embed-precision", "fp32", "--query-format", "{query}", "-n", "3", "--range-max", "8")
        negatives[backend] = {(r["query"], r["positive"]): r["negatives"] for r in iter_rows(out, Task.RETRIEVAL)}
    assert negatives["onnx"] == negatives["torch"]
    assert all(len(found) >= 3 for found in negatives["onnx"].values())
