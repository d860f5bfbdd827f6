"""The mining index as a checkpointed artifact of the stage: `OUT/_index/`, built once, reused on reruns.

Files: `items.arrow` (every candidate or positive text with its keys and document key, memory-mapped),
`vectors.f32` (their unit vectors, row = item id, memory-mapped), `groups.npz` (positives of each query),
`index.faiss` (the first `n_index` items; `index.ivfdata` holds an IVF index's lists) and `meta.json`, written
last, whose fingerprint says which inputs, corpus, model and index settings it was built from. A crash mid-build
leaves no `meta.json`, so the next run rebuilds, re-embedding nothing (the cache has it).
"""

from __future__ import annotations

import hashlib
import json
import os
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from rich.console import Console

from synth import storage
from synth.embed.cached import CachedEmbedder
from synth.executor.placement import run_placed
from synth.mining.corpus import (
    CorpusItem,
    SkippedRows,
    document_key,
    iter_passages,
    iter_positives,
    normalized_key,
    read_corpus_file,
    text_key,
)
from synth.mining.index import (
    ExactRescored,
    IndexSettings,
    build_index,
    build_memory,
    load_index,
    place_on_devices,
    search_devices,
)
from synth.mining.options import MINE_DEFAULTS
from synth.store import PartRef, atomic_write_bytes, file_fingerprint

console = Console(stderr=True)
ARTIFACT_DIR = "_index"
EMBED_CHUNK = 16_384
"""Items embedded and written per step while building: memory stays bounded by one chunk."""

ITEM_SCHEMA = pa.schema(
    [("text", pa.string()), ("key", pa.uint64()), ("norm_key", pa.uint64()), ("doc_key", pa.uint64())]
)
ARTIFACT_VERSION = 2
"""Bumped when the files change shape (2: items carry a document key), so older artifacts are rebuilt."""
INPUT_TASKS = ("retrieval", "passage")
"""Input parts the index is built from: records' positives and passages."""


@dataclass(frozen=True)
class CorpusSettings:
    """Which texts are mining candidates: `positives` (and the inputs' passages), `file` (the `files`), or `both`."""

    source: str = MINE_DEFAULTS["corpus_from"]
    files: tuple[str, ...] = ()
    field: str = MINE_DEFAULTS["corpus_field"]


def fingerprint(parts: list[PartRef], corpus: CorpusSettings, model_id: str, index: IndexSettings) -> str:
    """What the artifact depends on: input parts, corpus files, model and the index-shaping settings."""
    facts: list[Any] = [ARTIFACT_VERSION, model_id, corpus.source, corpus.field]
    facts += [index.exact_max, index.pq_min, index.nlist, index.seed]
    facts += [file_fingerprint(p.path) for p in parts if p.task.value in INPUT_TASKS]
    facts += [file_fingerprint(Path(f)) for f in corpus.files]
    return hashlib.sha256(json.dumps(facts).encode("utf-8")).hexdigest()[:24]


class _ItemWriter:
    """Assigns item ids to distinct texts and streams their text and vectors to disk, one chunk at a time."""

    def __init__(self, directory: Path, embedder: CachedEmbedder):
        self.directory = directory
        self.embedder = embedder
        self.ids: dict[int, int] = {}
        self.pending: list[str] = []
        self.pending_documents: list[str | None] = []
        self.dim = 0
        self._texts = pa.ipc.new_file(str(directory / ".items.arrow.tmp"), ITEM_SCHEMA)
        self._vectors = open(directory / ".vectors.f32.tmp", "wb")  # noqa: SIM115 - closed in close()

    def add(self, text: str, document_id: str | None = None) -> int:
        """The item id of `text`; a text seen before keeps the document it first came with."""
        key = text_key(text)
        item = self.ids.get(key)
        if item is None:
            item = self.ids[key] = len(self.ids)
            self.pending.append(text)
            self.pending_documents.append(document_id)
            if len(self.pending) >= EMBED_CHUNK:
                self.flush()
        return item

    def add_all(self, items: Iterable[CorpusItem]) -> None:
        for item in items:
            self.add(item.text, item.document_id)

    def flush(self) -> None:
        if not self.pending:
            return
        vectors = self.embedder.encode_documents(self.pending)
        self.dim = vectors.shape[1]
        self._vectors.write(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
        keys = [text_key(t) for t in self.pending]
        norm = [normalized_key(t) for t in self.pending]
        documents = [document_key(d) for d in self.pending_documents]
        self._texts.write_table(pa.table([self.pending, keys, norm, documents], schema=ITEM_SCHEMA))  # one batch
        self.pending, self.pending_documents = [], []

    def close(self) -> None:
        self.flush()
        self._texts.close()
        self._vectors.flush()
        os.fsync(self._vectors.fileno())
        self._vectors.close()
        os.replace(self.directory / ".items.arrow.tmp", self.directory / "items.arrow")
        os.replace(self.directory / ".vectors.f32.tmp", self.directory / "vectors.f32")


class MiningIndex:
    """Items, their vectors, the positives of each query and the FAISS index, as loaded from `OUT/_index/`.

    Pickled (to a cluster's worker) as its directory: the worker memory-maps the files itself and places the index
    on its own GPUs, instead of receiving every vector through the object store."""

    def __init__(self, directory: Path, meta: dict[str, Any], neighbours: int, nprobe: int):
        self.directory = directory
        self.meta = meta
        self.neighbours = neighbours
        self.nprobe = nprobe
        self.devices = search_devices(neighbours)
        storage.local_tree(directory)  # a worker on another node than the driver, on an object store
        # Memory-mapped Arrow: texts are paged in when a negative is written out, never loaded whole.
        items = pa.ipc.open_file(pa.memory_map(str(directory / "items.arrow"))).read_all()
        self.texts = items.column("text")
        self.norm_keys = items.column("norm_key").to_numpy()
        self.doc_keys = items.column("doc_key").to_numpy()
        keys = items.column("key").to_numpy()
        self._key_order = np.argsort(keys)
        self._sorted_keys = keys[self._key_order]
        self.n_index = int(meta["n_index"])
        self.vectors = np.memmap(
            directory / "vectors.f32", dtype=np.float32, mode="r", shape=(int(meta["n_items"]), int(meta["dim"]))
        )
        groups = np.load(directory / "groups.npz")
        self._group_keys, self._group_items = groups["query_keys"], groups["item_ids"]
        self.index = place_on_devices(load_index(directory / "index.faiss", nprobe), self.devices)
        if meta.get("index") == "ivfpq":
            self.index = ExactRescored(self.index, self.vectors)

    def __reduce__(self) -> tuple[Any, ...]:
        return MiningIndex, (self.directory, self.meta, self.neighbours, self.nprobe)

    def item_ids(self, texts: list[str]) -> np.ndarray:
        """Item id of each text (every positive is an item); -1 for a text that is not one."""
        keys = np.fromiter((text_key(t) for t in texts), dtype=np.uint64, count=len(texts))
        pos = np.minimum(np.searchsorted(self._sorted_keys, keys), len(self._sorted_keys) - 1)
        return np.where(self._sorted_keys[pos] == keys, self._key_order[pos], -1)

    def positives_of(self, queries: list[str]) -> list[np.ndarray]:
        """Item ids of every positive each query has anywhere in the input (several records, one query)."""
        keys = np.fromiter((text_key(q) for q in queries), dtype=np.uint64, count=len(queries))
        lo = np.searchsorted(self._group_keys, keys, side="left")
        hi = np.searchsorted(self._group_keys, keys, side="right")
        return [self._group_items[a:b] for a, b in zip(lo, hi, strict=True)]

    def texts_of(self, ids: np.ndarray) -> list[str]:
        return self.texts.take(pa.array(ids, type=pa.int64())).to_pylist()


def build_index_file(directory: Path, n_items: int, n_index: int, dim: int, index: IndexSettings) -> None:
    """`index.faiss` over the first `n_index` vectors of `vectors.f32`, on whichever node runs this (it reads the
    files, so only their names travel)."""
    storage.local_tree(directory)
    vectors = np.memmap(directory / "vectors.f32", dtype=np.float32, mode="r", shape=(n_items, dim))
    build_index(vectors[:n_index], index, directory / "index.faiss")
    storage.push_tree(directory)


def build_artifact(
    directory: Path, parts: list[PartRef], corpus: CorpusSettings, embedder: CachedEmbedder, index: IndexSettings
) -> dict[str, Any]:
    """Collect items (indexed ones first), embed them through the cache, build and save the index; returns meta."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "meta.json").unlink(missing_ok=True)
    writer = _ItemWriter(directory, embedder)
    query_keys = array("Q")  # 16 bytes per record, not two Python ints
    item_ids = array("q")

    skipped = SkippedRows()

    def add_positives() -> None:
        for query, positive, document in iter_positives(parts):
            query_keys.append(text_key(query))
            item_ids.append(writer.add(positive, document))

    if corpus.source in ("positives", "both"):
        add_positives()
        writer.add_all(iter_passages(parts))
    if corpus.source in ("file", "both"):
        for path in corpus.files:
            writer.add_all(read_corpus_file(Path(path), corpus.field, skipped))
    if skipped.count:
        console.print(f"[yellow]mine: skipped {skipped.count} unreadable corpus rows, first {skipped.first[0]}",
                      highlight=False, soft_wrap=True)
    writer.flush()
    n_index = len(writer.ids)
    if corpus.source == "file":
        add_positives()  # positives are scored and guarded against, but not candidates
    writer.close()
    keys, ids = np.frombuffer(query_keys, dtype=np.uint64), np.frombuffer(item_ids, dtype=np.int64)
    order = np.argsort(keys, kind="stable")
    np.savez(directory / "groups.npz", query_keys=keys[order], item_ids=ids[order])
    n_items, dim = len(writer.ids), writer.dim
    storage.push_tree(directory)  # on an object store, for the node the build is placed on
    run_placed(build_index_file, directory, n_items, n_index, dim, index, memory=build_memory(n_index, dim, index),
               gpu=index.kind(n_index) != "flat")  # an IVF index is trained and filled on a GPU where there is one
    return {
        "n_items": n_items,
        "n_index": n_index,
        "dim": dim,
        "index": index.kind(n_index),
        "nlist": index.lists(n_index) if index.kind(n_index) != "flat" else None,
        "records": len(query_keys),
        "corpus_rows_skipped": skipped.count,
        "corpus_rows_skipped_first": skipped.first,
    }


def open_artifact(
    out: Path,
    parts: list[PartRef],
    corpus: CorpusSettings,
    embedder: CachedEmbedder,
    index: IndexSettings,
    neighbours: int,
) -> tuple[MiningIndex, bool]:
    """The mining index for these inputs, searched for `neighbours` per query: loaded when `OUT/_index/` matches
    them, built otherwise (and saved)."""
    directory = Path(out) / ARTIFACT_DIR
    digest = fingerprint(parts, corpus, embedder.model_id, index)
    meta_path = directory / "meta.json"
    built = False
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}
    if meta.get("fingerprint") != digest:
        facts = build_artifact(directory, parts, corpus, embedder, index)
        meta = {"fingerprint": digest, "model": embedder.model_id, **facts}
        atomic_write_bytes(meta_path, json.dumps(meta, indent=1).encode("utf-8"))
        built = True
    return MiningIndex(directory, meta, neighbours, index.nprobe), built
