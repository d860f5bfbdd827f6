"""Mining's index at scale: IVF-PQ with exact scores, the memory its build holds, and where it is searched (every
GPU FAISS sees, sharded; the CPU without one or for more neighbours than FAISS on GPU returns). A pickled index (a
cluster worker's copy) decides again in the process that loads it."""

from __future__ import annotations

import json
import pickle
from types import SimpleNamespace

import faiss
import numpy as np
import pytest
from embed_fixtures import CountingEmbedder
from pipeline_fixtures import retrieval, write_stage
from test_mine import counting, make_input, mine  # noqa: F401 - `counting` is a fixture

from synth.mining import index as mining_index
from synth.mining.artifact import ARTIFACT_DIR, MiningIndex
from synth.store import iter_rows


def pretend_gpus(monkeypatch, count: int) -> list[tuple]:
    """FAISS counts `count` GPUs; placing an index on them is recorded (and gives a stand-in)."""
    placed: list[tuple] = []
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: count)
    monkeypatch.setattr(faiss, "GpuMultipleClonerOptions", lambda: SimpleNamespace(), raising=False)
    monkeypatch.setattr(faiss, "index_cpu_to_all_gpus",
                        lambda idx, co, ngpu: placed.append((idx, co, ngpu)) or "gpu-index", raising=False)
    return placed


def test_search_devices_are_every_gpu_unless_too_many_neighbours_are_asked(monkeypatch):
    pretend_gpus(monkeypatch, 2)
    assert mining_index.search_devices(94) == 2
    assert mining_index.search_devices(mining_index.GPU_MAX_K) == 2
    assert mining_index.search_devices(mining_index.GPU_MAX_K + 1) == 0
    pretend_gpus(monkeypatch, 0)
    assert mining_index.search_devices(94) == 0


@pytest.mark.usefixtures("counting")
def test_a_pickled_index_is_reopened_on_the_loading_process_gpus(tmp_path, monkeypatch):
    out = tmp_path / "out"
    mine(str(make_input(tmp_path / "in")), "--out", str(out), "--embed-model", "bow",
         "--embed-cache", str(tmp_path / "cache"), "-n", "1", "--range-max", "3", "--relative-margin", "none")
    directory = out / ARTIFACT_DIR
    meta = json.loads((directory / "meta.json").read_text())
    on_cpu = MiningIndex(directory, meta, 94, 8)
    assert on_cpu.devices == 0 and on_cpu.index != "gpu-index"
    payload = pickle.dumps(on_cpu)
    assert len(payload) < (directory / "vectors.f32").stat().st_size + 4096  # its directory, not its vectors
    placed = pretend_gpus(monkeypatch, 2)  # the loading worker has two GPUs
    copy = pickle.loads(payload)
    assert copy.devices == 2 and copy.index == "gpu-index" and placed[0][2] == 2 and placed[0][1].shard is True
    assert copy.item_ids(on_cpu.texts_of([0, 1]).copy()).tolist() == [0, 1]
    too_many = pickle.loads(pickle.dumps(MiningIndex(directory, meta, mining_index.GPU_MAX_K + 1, 8)))
    assert too_many.devices == 0 and too_many.index != "gpu-index"


def test_an_ivf_index_is_trained_and_filled_on_the_gpus_faiss_sees(tmp_path, monkeypatch):
    vectors = np.random.default_rng(0).standard_normal((3000, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ivf = mining_index.IndexSettings(exact_max=100, nlist=8, nprobe=8)
    mining_index.build_index(vectors, ivf, tmp_path / "cpu.faiss")  # faiss-cpu: no GPU
    placed: list[tuple[int, int]] = []
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 2)
    monkeypatch.setattr(faiss, "index_cpu_to_all_gpus",  # the stand-in "GPU" copy is the CPU index itself
                        lambda idx, co=None, ngpu=-1: placed.append((idx.ntotal, ngpu)) or idx, raising=False)
    assert mining_index.build_gpus(3000, ivf) == 2 and mining_index.build_gpus(100, ivf) == 0  # exact: no GPU
    mining_index.build_index(vectors, ivf, tmp_path / "gpu.faiss")
    assert placed == [(0, 2), (8, 2)]  # k-means' clustering index, then the 8 trained centroids that place vectors
    on_cpu, on_gpus = (mining_index.load_index(tmp_path / name, 8) for name in ("cpu.faiss", "gpu.faiss"))
    for found, expected in zip(mining_index.search(on_gpus, vectors[:200], 10, 64),
                               mining_index.search(on_cpu, vectors[:200], 10, 64), strict=True):
        assert np.array_equal(found, expected)  # the same index, whichever device did the work
    placed.clear()
    mining_index.build_index(vectors[:100], ivf, tmp_path / "flat.faiss")
    assert placed == []


def test_building_an_ivf_index_holds_a_bounded_memory_an_exact_one_every_vector():
    settings = mining_index.IndexSettings(exact_max=1000)
    assert mining_index.build_memory(1000, 384, settings) == 1000 * 384 * 4 + 2**28  # exact: every vector
    bounded = mining_index.build_memory(10**6, 384, settings)
    assert bounded == mining_index.build_memory(10**9, 384, settings) < 2**30  # IVF: sample and chunks only


@pytest.mark.usefixtures("counting")
def test_ivfpq_mines_nearly_what_exact_search_mines_with_exact_scores(tmp_path):
    words = [f"w{i}" for i in range(60)]
    rng = np.random.default_rng(0)
    rows = [retrieval(" ".join(rng.choice(words, 3)), " ".join(rng.choice(words, 8))) for _ in range(2500)]
    src = write_stage(tmp_path / "in", [rows])
    common = ["--embed-model", "bow", "--embed-cache", str(tmp_path / "cache"), "--relative-margin", "none",
              "--query-format", "{query}"]
    mine(str(src), "--out", str(tmp_path / "flat"), *common)
    mine(str(src), "--out", str(tmp_path / "pq"), *common, "--exact-max", "50", "--pq-min", "100", "--nlist", "8",
         "--nprobe", "8")
    assert json.loads((tmp_path / "pq" / "_manifest.json").read_text())["index"]["index"] == "ivfpq"
    flat = {r["id"]: r for r in iter_rows(tmp_path / "flat")}
    pq = list(iter_rows(tmp_path / "pq"))
    backend = CountingEmbedder()
    for row in pq:  # every score is the exact cosine, best first
        exact = backend.embed(row["negatives"]) @ backend.embed([row["query"]])[0]
        assert np.allclose(row["negative_scores"], exact, atol=1e-5)
        assert row["negative_scores"] == sorted(row["negative_scores"], reverse=True)
    # Bag-of-words vectors tie often, so compare by score. 2,500 training vectors give 6-bit codes (8 need about
    # 10,000): the negatives of 89% of records score exactly as exact search's.
    same = sum(np.allclose(r["negative_scores"], flat[r["id"]]["negative_scores"], atol=1e-5) for r in pq)
    assert len(pq) == len(flat) and same >= 0.85 * len(pq), same
