"""An embedder behind the cache: de-duplicates texts, embeds only what is missing, stores it at once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from synth.embed.base import Embedder, normalize
from synth.embed.cache import EmbeddingCache, text_keys
from synth.embed.instructions import format_query

FLUSH_TEXTS = 4096
"""Texts embedded between two cache writes: a crash loses at most this much work."""


@dataclass
class EmbedStats:
    """What the cache saved: texts served from the cache, and texts sent to the model."""

    cache_hits: int = 0
    embedded: int = 0


@dataclass
class _Lookup:
    """Texts to encode as their distinct keys (`first` text of each, `inverse` back to the texts), and which of
    those the cache lacks."""

    texts: list[str]
    keys: np.ndarray
    first: np.ndarray
    inverse: np.ndarray
    missing: np.ndarray

    def chunks(self, size: int) -> Iterator[np.ndarray]:
        """The missing keys' positions, `size` at a time."""
        for start in range(0, len(self.missing), size):
            yield self.missing[start : start + size]

    def texts_of(self, chunk: np.ndarray) -> list[str]:
        return [self.texts[i] for i in self.first[chunk]]


class CachedEmbedder:
    """Queries are written in `query_format` (with the record's instruction as `{task}`); documents as they are."""

    def __init__(
        self,
        backend: Embedder,
        cache: EmbeddingCache | None = None,
        query_format: str = "{query}",
        flush_texts: int = FLUSH_TEXTS,
    ):
        self.backend = backend
        self.cache = cache
        self.query_format = query_format
        self.flush_texts = flush_texts
        self.stats = EmbedStats()
        self._memory: dict[bytes, np.ndarray] = {}  # used only without a cache directory

    @property
    def model_id(self) -> str:
        return self.backend.model_id

    def endpoint_usage(self) -> dict[str, Any]:
        """The API backend's per-endpoint usage (`synth.llm.endpoint_stats`); {} for a model in this process."""
        usage = getattr(self.backend, "endpoint_usage", None)
        return usage() if usage is not None else {}

    def close(self) -> None:
        """Close the backend's connections (the API backend's); a model in this process holds none."""
        close = getattr(self.backend, "close", None)
        if close is not None:
            close()

    def encode_queries(self, queries: Sequence[str], instructions: Sequence[str | None]) -> np.ndarray:
        """Unit vectors of queries, each formatted with its own instruction."""
        return self.encode([format_query(q, i, self.query_format) for q, i in zip(queries, instructions, strict=True)])

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors of passages (no instruction)."""
        return self.encode(list(texts))

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit vectors of final texts, each distinct text embedded at most once across runs."""
        lookup = self._look_up(texts)
        for chunk in lookup.chunks(self.flush_texts):
            self._store(lookup, chunk, self.backend.embed(lookup.texts_of(chunk)))
        return self._vectors(lookup)

    async def aencode(self, texts: list[str], embed: Callable[[list[str]], Awaitable[np.ndarray]]) -> np.ndarray:
        """`encode` for a coroutine, the missing texts embedded by awaiting `embed` (the backend's, off the loop):
        the cache is read and written on the caller's loop thread, as `encode` does on its thread."""
        lookup = self._look_up(texts)
        for chunk in lookup.chunks(self.flush_texts):
            self._store(lookup, chunk, await embed(lookup.texts_of(chunk)))
        return self._vectors(lookup)

    def _look_up(self, texts: list[str]) -> _Lookup:
        keys = text_keys(texts)
        unique_keys, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        missing = np.flatnonzero(self._find(unique_keys) < 0)
        self.stats.cache_hits += len(unique_keys) - len(missing)
        return _Lookup(texts, unique_keys, first, inverse, missing)

    def _store(self, lookup: _Lookup, chunk: np.ndarray, vectors: np.ndarray) -> None:
        """Vectors of a chunk of the missing texts, into the cache at once (a crash loses at most one chunk)."""
        self._put(lookup.keys[chunk], normalize(vectors))
        self.stats.embedded += len(chunk)

    def _vectors(self, lookup: _Lookup) -> np.ndarray:
        if not lookup.texts:
            return np.empty((0, 0), dtype=np.float32)
        return self._gather(lookup.keys)[lookup.inverse.reshape(-1)]

    def _find(self, keys: np.ndarray) -> np.ndarray:
        if self.cache is not None:
            return self.cache.find(keys)
        return np.array([0 if k in self._memory else -1 for k in keys.tolist()], dtype=np.int64)

    def _put(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        if self.cache is not None:
            self.cache.put(keys, vectors)
        else:
            self._memory.update(zip(keys.tolist(), vectors, strict=True))

    def _gather(self, keys: np.ndarray) -> np.ndarray:
        if self.cache is not None:
            return self.cache.gather(self.cache.find(keys))
        return np.stack([self._memory[k] for k in keys.tolist()])
