"""On-disk embedding cache: memory-mappable shards keyed by (model id, instruction, text hash).

Layout: `ROOT/<model-slug>-<hash>/` holds `NAME.keys.npy` (16-byte digests of the embedded text, which carries
the instruction) and `NAME.vectors.npy` (float32 rows). A shard counts only once its keys file exists, and both
files are written atomically, so a crash leaves no half shard and concurrent writers never clash.
"""

from __future__ import annotations

import hashlib
import io
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synth.errors import ConfigError
from synth.store import atomic_write_bytes

KEY_DTYPE = np.dtype("S16")
RECENT_SHARE = 8
"""New keys wait in a small sorted table until it holds 1/RECENT_SHARE of the main one; then the two merge.
So adding n vectors costs O(n log n) overall instead of a re-sort of the whole table at every write."""


def text_keys(texts: list[str]) -> np.ndarray:
    """16-byte BLAKE2b digests of final texts (instruction already applied), as an `S16` array."""
    return np.array([hashlib.blake2b(t.encode("utf-8"), digest_size=16).digest() for t in texts], dtype=KEY_DTYPE)


def namespace(model_id: str) -> str:
    """A readable, collision-free folder name for one model's vector space."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model_id.rstrip("/").rsplit("/", 1)[-1])[:48]
    return f"{slug}-{hashlib.sha256(model_id.encode('utf-8')).hexdigest()[:12]}"


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


@dataclass(frozen=True)
class KeyTable:
    """Sorted text keys with the shard and row of each key's vector."""

    keys: np.ndarray
    shard_of: np.ndarray
    row_of: np.ndarray

    @classmethod
    def empty(cls) -> KeyTable:
        return cls(np.empty(0, dtype=KEY_DTYPE), np.empty(0, dtype=np.int32), np.empty(0, dtype=np.int64))

    @classmethod
    def sorted_from(cls, keys: np.ndarray, shard_of: np.ndarray, row_of: np.ndarray) -> KeyTable:
        order = np.argsort(keys, kind="stable")
        return cls(keys[order], shard_of[order], row_of[order])

    def __len__(self) -> int:
        return len(self.keys)

    def find(self, keys: np.ndarray) -> np.ndarray:
        """Position of each key in this table, or -1."""
        if not len(self.keys):
            return np.full(len(keys), -1, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        return np.where(self.keys[pos] == keys, pos, -1).astype(np.int64)

    def merged(self, other: KeyTable) -> KeyTable:
        """Both tables as one sorted table, in time linear in their sizes (the large one is never re-sorted)."""
        at = np.searchsorted(self.keys, other.keys)
        return KeyTable(np.insert(self.keys, at, other.keys), np.insert(self.shard_of, at, other.shard_of),
                        np.insert(self.row_of, at, other.row_of))


class EmbeddingCache:
    """Vectors of one model, looked up by text key; shards are opened memory-mapped, never loaded whole."""

    def __init__(self, root: Path, model_id: str):
        self.directory = Path(root) / namespace(model_id)
        self.model_id = model_id
        self._shards: list[np.ndarray] = []
        self._main = KeyTable.empty()
        self._recent = KeyTable.empty()
        self.dim: int | None = None
        self._load()

    def __len__(self) -> int:
        return len(self._main) + len(self._recent)

    def _load(self) -> None:
        keys, shard_of, row_of = [], [], []
        if self.directory.is_dir():
            for keys_path in sorted(self.directory.glob("*.keys.npy")):
                vectors_path = keys_path.with_name(keys_path.name.replace(".keys.npy", ".vectors.npy"))
                if not vectors_path.exists():
                    continue
                shard_keys = np.load(keys_path, allow_pickle=False)
                self._check_dim(np.load(vectors_path, mmap_mode="r").shape[1])
                self._shards.append(np.load(vectors_path, mmap_mode="r"))
                keys.append(shard_keys)
                shard_of.append(np.full(len(shard_keys), len(self._shards) - 1, dtype=np.int32))
                row_of.append(np.arange(len(shard_keys), dtype=np.int64))
        if keys:
            self._main = KeyTable.sorted_from(np.concatenate(keys), np.concatenate(shard_of), np.concatenate(row_of))

    def _check_dim(self, dim: int) -> None:
        if self.dim is None:
            self.dim = dim
        elif dim != self.dim:
            raise ConfigError(
                f"embedding cache {self.directory} holds vectors of dimension {self.dim}, got {dim}: "
                "the model changed under the same model id; use another --embed-cache"
            )

    def find(self, keys: np.ndarray) -> np.ndarray:
        """Position of each key in the cache (main table first, then the recent one), or -1 when it is not cached."""
        in_main, in_recent = self._main.find(keys), self._recent.find(keys)
        return np.where(in_main >= 0, in_main, np.where(in_recent >= 0, in_recent + len(self._main), -1))

    def _locate(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Shard and row of each cache position."""
        recent = positions >= len(self._main)
        shards, rows = np.empty(len(positions), dtype=np.int32), np.empty(len(positions), dtype=np.int64)
        shards[~recent], rows[~recent] = self._main.shard_of[positions[~recent]], self._main.row_of[positions[~recent]]
        in_recent = positions[recent] - len(self._main)
        shards[recent], rows[recent] = self._recent.shard_of[in_recent], self._recent.row_of[in_recent]
        return shards, rows

    def gather(self, positions: np.ndarray) -> np.ndarray:
        """Vectors at cache positions (from `find`, all >= 0), read from the memory-mapped shards."""
        out = np.empty((len(positions), self.dim or 0), dtype=np.float32)
        shards, rows = self._locate(positions)
        for shard in np.unique(shards):
            hit = shards == shard
            rows_in_shard = rows[hit]
            order = np.argsort(rows_in_shard)  # sequential reads from the mapped file
            block = self._shards[shard][rows_in_shard[order]]
            out[np.flatnonzero(hit)[order]] = block
        return out

    def put(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Store new vectors as one shard (vectors first, keys last: the keys file marks it complete)."""
        if not len(keys):
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self._check_dim(vectors.shape[1])
        name = uuid.uuid4().hex
        vectors_path = self.directory / f"{name}.vectors.npy"
        atomic_write_bytes(vectors_path, _npy_bytes(vectors))
        atomic_write_bytes(self.directory / f"{name}.keys.npy", _npy_bytes(np.asarray(keys, dtype=KEY_DTYPE)))
        self._shards.append(np.load(vectors_path, mmap_mode="r"))
        shard = len(self._shards) - 1
        added = KeyTable.sorted_from(np.asarray(keys, dtype=KEY_DTYPE), np.full(len(keys), shard, dtype=np.int32),
                                     np.arange(len(keys), dtype=np.int64))
        self._recent = self._recent.merged(added)
        if len(self._recent) * RECENT_SHARE > len(self._main):
            self._main, self._recent = self._main.merged(self._recent), KeyTable.empty()
