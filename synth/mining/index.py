"""The FAISS index: exact inner product up to `exact_max` vectors, IVF above; GPU when FAISS sees one.

Vectors are unit length, so inner product is cosine. The index is built from a memory-mapped vector file as a CPU
index (an IVF index is trained and filled on the GPUs when FAISS sees any) and moved to every GPU (sharded, fp16)
for searching. Private memory stays bounded whatever the
corpus size: an exact index never holds more than `exact_max` vectors, and an IVF index is trained on a capped
sample, filled shard by shard and merged into inverted lists on disk that searches read memory-mapped.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synth.errors import ConfigError
from synth.mining.options import MINE_DEFAULTS

ADD_CHUNK = 65_536
TRAIN_SAMPLE = 65_536
"""Vectors an IVF index is trained on, at most (FAISS wants at least 39 per list, so lists <= 1680)."""
RESCORE_WIDEN = 4
"""How many times more candidates an IVF-PQ search fetches than it returns, to score again exactly."""
GPU_MAX_K = 2048
"""FAISS on GPU returns at most 2048 neighbours per query."""


def _faiss():
    try:
        import faiss
    except ImportError as exc:
        raise ConfigError("mining needs FAISS: pip install 'synth[cpu]' (faiss-cpu) or 'synth[gpu]'") from exc
    return faiss


@dataclass(frozen=True)
class IndexSettings:
    """How the index is built and searched; only `exact_max`, `pq_min`, `nlist` and `seed` change the built index."""

    exact_max: int = MINE_DEFAULTS["exact_max"]
    pq_min: int = MINE_DEFAULTS["pq_min"]
    nlist: int | None = None
    nprobe: int = MINE_DEFAULTS["nprobe"]
    search_batch_size: int = MINE_DEFAULTS["search_batch_size"]
    seed: int = MINE_DEFAULTS["seed"]

    def kind(self, size: int) -> str:
        """`flat` (exact) up to `exact_max` vectors, `ivfpq` (compressed) from `pq_min`, `ivf` between."""
        if size <= self.exact_max:
            return "flat"
        return "ivfpq" if size >= self.pq_min else "ivf"

    def lists(self, size: int) -> int:
        """IVF list count: the setting, else about 4 * sqrt(size), never more than the training sample / 39."""
        wanted = self.nlist or int(4 * math.sqrt(size))
        return max(1, min(wanted, min(size, TRAIN_SAMPLE) // 39))


def num_gpus() -> int:
    """GPUs FAISS can use: 0 with faiss-cpu or on a machine without one."""
    faiss = _faiss()
    return int(faiss.get_num_gpus()) if hasattr(faiss, "get_num_gpus") else 0


def search_devices(neighbours: int) -> int:
    """GPUs this process shards the index over for searches of `neighbours` per query: every GPU FAISS sees, or
    none (the CPU) when there are none or FAISS on GPU cannot return that many neighbours. Each process that
    searches (a cluster's model actor on its own GPU) decides for itself."""
    gpus = num_gpus()
    return gpus if neighbours <= GPU_MAX_K else 0


def build_gpus(size: int, settings: IndexSettings) -> int:
    """GPUs the build of an index over `size` vectors uses: for IVF, every GPU FAISS sees (training's k-means and
    finding each vector's list are what they speed up); none for an exact index (nothing to train: adding is a
    copy), and none without a GPU or with faiss-cpu. The index built is the CPU's; only the work moves."""
    return num_gpus() if settings.kind(size) != "flat" else 0


def pq_shape(dim: int, sample: int) -> tuple[int, int]:
    """(sub-quantizers, bits each) of IVF-PQ codes: 16 dimensions per sub-quantizer (64 bytes for 1024 dimensions),
    8 bits when the training sample has the 39 vectors per centroid FAISS wants, fewer on a smaller one."""
    subquantizers = max(m for m in range(1, max(1, dim // 16) + 1) if dim % m == 0)
    return subquantizers, max(1, min(8, int(math.log2(max(2, sample // 39)))))


class ExactRescored:
    """An IVF-PQ index whose candidates are scored again on the full vectors, best first: PQ scores are approximate,
    and the rules compare candidates' scores with the exact scores of positives. It looks `RESCORE_WIDEN` times as
    deep as asked, so that a candidate PQ ranks a little too low is still found."""

    def __init__(self, index, vectors: np.ndarray):
        self.index = index
        self.vectors = vectors
        self.ntotal = index.ntotal

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        _, ids = self.index.search(queries, min(self.ntotal, k * RESCORE_WIDEN))
        scores = np.einsum("qd,qkd->qk", queries, self.vectors[np.where(ids >= 0, ids, 0)])
        scores[ids < 0] = -np.inf
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)


def build_memory(size: int, dim: int, settings: IndexSettings) -> int:
    """Bytes that building the index over `size` vectors of `dim` holds: every vector for an exact index; for IVF the
    training sample and two chunks (its lists go to disk); plus 256 MiB for FAISS and Python."""
    held = size if settings.kind(size) == "flat" else min(size, TRAIN_SAMPLE) + 2 * ADD_CHUNK
    return held * dim * 4 + 2**28


def build_index(vectors: np.ndarray, settings: IndexSettings, path: Path) -> None:
    """Write the index over `vectors` (n, d) to `path`: exact, or IVF with its lists in `path`.ivfdata."""
    faiss = _faiss()
    size, dim = vectors.shape
    if settings.kind(size) == "flat":
        index = faiss.IndexFlatIP(dim)
        for start in range(0, size, ADD_CHUNK):
            index.add(np.ascontiguousarray(vectors[start : start + ADD_CHUNK], dtype=np.float32))
        save_index(index, path)
        return
    sample = np.sort(np.random.default_rng(settings.seed).choice(size, min(size, TRAIN_SAMPLE), replace=False))
    if settings.kind(size) == "ivfpq":
        index = faiss.IndexIVFPQ(faiss.IndexFlatIP(dim), dim, settings.lists(size), *pq_shape(dim, len(sample)),
                                 faiss.METRIC_INNER_PRODUCT)
    else:
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, settings.lists(size), faiss.METRIC_INNER_PRODUCT)
    gpus = build_gpus(size, settings)
    if gpus:  # k-means assigns the sample to centroids on the GPUs (FAISS's clustering index); kept alive here
        clustering = faiss.index_cpu_to_all_gpus(faiss.IndexFlatIP(dim), ngpu=gpus)
        index.clustering_index = clustering
    index.train(np.ascontiguousarray(vectors[sample], dtype=np.float32))
    trained = faiss.serialize_index(index)
    # Each vector's list is found on the GPUs too: a copy of the trained centroids there.
    lists = faiss.index_cpu_to_all_gpus(faiss.downcast_index(index.quantizer), ngpu=gpus) if gpus else None
    shards = []
    for number, start in enumerate(range(0, size, ADD_CHUNK)):
        shard = faiss.deserialize_index(trained)
        block = np.ascontiguousarray(vectors[start : start + ADD_CHUNK], dtype=np.float32)
        ids = np.arange(start, start + len(block), dtype=np.int64)
        if lists is None:
            shard.add_with_ids(block, ids)
        else:
            from faiss.contrib.ivf_tools import add_preassigned

            add_preassigned(shard, block, np.ascontiguousarray(lists.search(block, 1)[1][:, 0]), ids)
        shards.append(path.with_name(f".shard-{number:05d}.faiss"))
        faiss.write_index(shard, str(shards[-1]))
        del shard
    from faiss.contrib.ondisk import merge_ondisk

    merged = faiss.deserialize_index(trained)
    path.with_suffix(".ivfdata").unlink(missing_ok=True)  # lists of an earlier build must not be appended to
    merge_ondisk(merged, [str(s) for s in shards], str(path.with_suffix(".ivfdata")))
    save_index(merged, path)
    for shard in shards:
        shard.unlink()


def place_on_devices(index, gpus: int):
    """Search on every GPU when there are any (sharded, fp16), else keep the CPU index."""
    if gpus <= 0:
        return index
    faiss = _faiss()
    options = faiss.GpuMultipleClonerOptions()
    options.shard = True
    options.useFloat16 = True
    return faiss.index_cpu_to_all_gpus(index, co=options, ngpu=gpus)


def set_nprobe(index, nprobe: int) -> None:
    """IVF lists visited per query, on a loaded CPU index (a GPU clone copies it)."""
    if hasattr(index, "nprobe"):
        index.nprobe = nprobe


def search(index, queries: np.ndarray, k: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (scores, ids) of each query, best first, searched `batch_size` queries at a time."""
    k = min(k, index.ntotal)
    scores = np.empty((len(queries), k), dtype=np.float32)
    ids = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries) if k > 0 else 0, batch_size):  # an empty corpus has no neighbours
        block = np.ascontiguousarray(queries[start : start + batch_size], dtype=np.float32)
        scores[start : start + len(block)], ids[start : start + len(block)] = index.search(block, k)
    return scores, ids


def save_index(index, path: Path) -> None:
    """Write the CPU index so that the file exists only when complete."""
    faiss = _faiss()
    tmp = path.with_name(f".{path.name}.tmp")
    faiss.write_index(index, str(tmp))
    os.replace(tmp, path)


def load_index(path: Path, nprobe: int):
    """Read a saved index; IVF lists stay on disk (memory-mapped), found beside the index file."""
    faiss = _faiss()
    index = faiss.read_index(str(path), faiss.IO_FLAG_ONDISK_SAME_DIR)
    set_nprobe(index, nprobe)
    return index
