"""An embedder behind the cache: de-duplicates texts, embeds only what is missing, stores it at once."""

from __future__ import annotations

from collections.abc import Sequence
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
        if not texts:
            return np.empty((0, 0), dtype=np.float32)
        keys = text_keys(texts)
        unique_keys, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        found = self._find(unique_keys)
        missing = np.flatnonzero(found < 0)
        self.stats.cache_hits += len(unique_keys) - len(missing)
        for start in range(0, len(missing), self.flush_texts):
            chunk = missing[start : start + self.flush_texts]
            vectors = normalize(self.backend.embed([texts[i] for i in first[chunk]]))
            self._put(unique_keys[chunk], vectors)
            self.stats.embedded += len(chunk)
        unique_vectors = self._gather(unique_keys)
        return unique_vectors[inverse.reshape(-1)]

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
