"""On-disk embedding cache: memory-mappable shards keyed by (model id, instruction, text hash).

Layout: `ROOT/<model-slug>-<hash>/` holds `NAME.keys.npy` (16-byte digests of the embedded text, which carries
the instruction) and `NAME.vectors.npy` (float32 rows). A shard counts only once its keys file exists, and both
files are written atomically, so a crash leaves no half shard and concurrent writers never clash.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import uuid
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synth.errors import ConfigError
from synth.store import atomic_path, atomic_write_bytes

KEY_DTYPE = np.dtype("S16")
RECENT_SHARE = 8
"""New keys wait in a small sorted table until it holds 1/RECENT_SHARE of the main one; then the two merge.
So adding n vectors costs O(n log n) overall instead of a re-sort of the whole table at every write."""
FANOUT = 8
TIER_BASE_ROWS = 4096
MAX_MERGED_ROWS = 1 << 20
"""Shards are merged FANOUT at a time within a size tier (like an LSM tree), up to this many rows, so a cache of
millions of vectors stays a few dozen files: each open shard holds a file descriptor (a default limit is 1,024)."""


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


def _tier(rows: int) -> int:
    """0 up to TIER_BASE_ROWS rows, then one more per FANOUT-fold growth."""
    tier = 0
    while rows > TIER_BASE_ROWS * FANOUT**tier:
        tier += 1
    return tier


class EmbeddingCache:
    """Vectors of one model, looked up by text key; shards are opened memory-mapped, never loaded whole."""

    def __init__(self, root: Path, model_id: str):
        self.directory = Path(root) / namespace(model_id)
        self.model_id = model_id
        self._shards: list[np.ndarray] = []
        self._names: list[str] = []
        self._gone: set[str] = set()  # shards another process merged away: still mapped here, never merged again
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
                self._names.append(keys_path.name.removesuffix(".keys.npy"))
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
        order = np.lexsort((rows, shards))  # shard by shard, rows ascending: sequential reads from mapped files
        starts = np.flatnonzero(np.diff(shards[order])) + 1
        for block in np.split(order, starts):
            if len(block):
                out[block] = self._shards[shards[block[0]]][rows[block]]
        return out

    def _paths(self, name: str) -> tuple[Path, Path]:
        return self.directory / f"{name}.keys.npy", self.directory / f"{name}.vectors.npy"

    def put(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Store new vectors as one shard (vectors first, keys last: the keys file marks it complete)."""
        if not len(keys):
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self._check_dim(vectors.shape[1])
        name = uuid.uuid4().hex
        keys_path, vectors_path = self._paths(name)
        atomic_write_bytes(vectors_path, _npy_bytes(vectors))
        atomic_write_bytes(keys_path, _npy_bytes(np.asarray(keys, dtype=KEY_DTYPE)))
        self._shards.append(np.load(vectors_path, mmap_mode="r"))
        self._names.append(name)
        shard = len(self._shards) - 1
        added = KeyTable.sorted_from(np.asarray(keys, dtype=KEY_DTYPE), np.full(len(keys), shard, dtype=np.int32),
                                     np.arange(len(keys), dtype=np.int64))
        self._recent = self._recent.merged(added)
        if len(self._recent) * RECENT_SHARE > len(self._main):
            self._main, self._recent = self._main.merged(self._recent), KeyTable.empty()
        while members := self._mergeable():  # each pass merges or sets aside shards, so it ends
            self._merge(members)

    def _mergeable(self) -> list[int]:
        """FANOUT shards of one size tier, when some tier has that many (shards at the size cap stay as they are)."""
        tiers: dict[int, list[int]] = defaultdict(list)
        for index, shard in enumerate(self._shards):
            if len(shard) < MAX_MERGED_ROWS and self._names[index] not in self._gone:
                tiers[_tier(len(shard))].append(index)
        return next((members[:FANOUT] for members in tiers.values() if len(members) >= FANOUT), [])

    def _merge(self, members: list[int]) -> None:
        """Rewrite `members` as one shard, streamed (vectors first, keys last), then delete them.

        A member whose files another process has merged away stays mapped here but is set aside, and nothing is
        merged this time."""
        try:
            keys = np.concatenate([np.load(self._paths(self._names[i])[0], allow_pickle=False) for i in members])
        except FileNotFoundError:
            names = [self._names[i] for i in members]
            self._gone.update([n for n in names if not self._paths(n)[0].exists()] or names)
            return
        name = uuid.uuid4().hex
        keys_path, vectors_path = self._paths(name)
        with atomic_path(vectors_path) as tmp:
            merged = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(keys), self.dim or 0))
            offsets = np.cumsum([0] + [len(self._shards[i]) for i in members])[:-1]
            for index, start in zip(members, offsets, strict=True):
                merged[start : start + len(self._shards[index])] = self._shards[index]
            merged.flush()
            del merged
        atomic_write_bytes(keys_path, _npy_bytes(keys))
        retired = [self._names[i] for i in members]
        self._replace_shards(members, offsets, name)
        for old in retired:  # the keys file first: without it a shard no longer counts
            for path in self._paths(old):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    def _replace_shards(self, members: list[int], offsets: np.ndarray, name: str) -> None:
        """Point the key tables at the merged shard (appended last): member rows move by their shard's offset."""
        merged = set(members)
        kept = [i for i in range(len(self._shards)) if i not in merged]
        new_shard = np.empty(len(self._shards), dtype=np.int32)
        row_offset = np.zeros(len(self._shards), dtype=np.int64)
        new_shard[kept] = np.arange(len(kept), dtype=np.int32)
        new_shard[members], row_offset[members] = len(kept), offsets
        self._main, self._recent = (KeyTable(t.keys, new_shard[t.shard_of], t.row_of + row_offset[t.shard_of])
                                    for t in (self._main, self._recent))
        self._shards = [self._shards[i] for i in kept] + [np.load(self._paths(name)[1], mmap_mode="r")]
        self._names = [self._names[i] for i in kept] + [name]
