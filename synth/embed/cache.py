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
from pathlib import Path

import numpy as np

from synth.errors import ConfigError
from synth.store import atomic_write_bytes

KEY_DTYPE = np.dtype("S16")


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


class EmbeddingCache:
    """Vectors of one model, looked up by text key; shards are opened memory-mapped, never loaded whole."""

    def __init__(self, root: Path, model_id: str):
        self.directory = Path(root) / namespace(model_id)
        self.model_id = model_id
        self._shards: list[np.ndarray] = []
        self._keys = np.empty(0, dtype=KEY_DTYPE)  # sorted
        self._shard_of = np.empty(0, dtype=np.int32)
        self._row_of = np.empty(0, dtype=np.int64)
        self.dim: int | None = None
        self._load()

    def __len__(self) -> int:
        return len(self._keys)

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
            self._index(np.concatenate(keys), np.concatenate(shard_of), np.concatenate(row_of))

    def _index(self, keys: np.ndarray, shard_of: np.ndarray, row_of: np.ndarray) -> None:
        order = np.argsort(keys, kind="stable")
        self._keys, self._shard_of, self._row_of = keys[order], shard_of[order], row_of[order]

    def _check_dim(self, dim: int) -> None:
        if self.dim is None:
            self.dim = dim
        elif dim != self.dim:
            raise ConfigError(
                f"embedding cache {self.directory} holds vectors of dimension {self.dim}, got {dim}: "
                "the model changed under the same model id; use another --embed-cache"
            )

    def find(self, keys: np.ndarray) -> np.ndarray:
        """Position of each key in the cache table, or -1 when it is not cached."""
        if not len(self._keys):
            return np.full(len(keys), -1, dtype=np.int64)
        pos = np.searchsorted(self._keys, keys)
        pos_clipped = np.minimum(pos, len(self._keys) - 1)
        return np.where(self._keys[pos_clipped] == keys, pos_clipped, -1).astype(np.int64)

    def gather(self, positions: np.ndarray) -> np.ndarray:
        """Vectors at cache positions (from `find`, all >= 0), read from the memory-mapped shards."""
        out = np.empty((len(positions), self.dim or 0), dtype=np.float32)
        shards, rows = self._shard_of[positions], self._row_of[positions]
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
        self._index(
            np.concatenate([self._keys, keys]),
            np.concatenate([self._shard_of, np.full(len(keys), shard, dtype=np.int32)]),
            np.concatenate([self._row_of, np.arange(len(keys), dtype=np.int64)]),
        )
