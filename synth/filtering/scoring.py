"""Scores the filter needs but the input lacks, through the mining helper's cached pair scoring."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from synth.embed import CachedEmbedder, build_embedder
from synth.embed.scoring import score_pairs


class LazyEmbedder:
    """The filter's embedder, built at the first need (rows without scores, embedding dedup): a filter whose rows
    carry their scores loads no model and asks no endpoint."""

    def __init__(self, options: dict[str, Any]):
        self.options = options
        self.embedder: CachedEmbedder | None = None

    def get(self) -> CachedEmbedder:
        if self.embedder is None:
            self.embedder = build_embedder(self.options)
        return self.embedder

    def endpoint_usage(self) -> dict[str, Any]:
        """An API embedder's per-endpoint usage in this process, for the stage's manifest."""
        return self.embedder.endpoint_usage() if self.embedder is not None else {}

    def close(self) -> None:
        if self.embedder is not None:
            self.embedder.close()


def score_rows(embedder: CachedEmbedder, rows: list[dict[str, Any]]) -> list[tuple[float, list[float]]]:
    """(query-positive cosine, query-negative cosines) of retrieval rows, in one batched call."""
    queries, docs, instructions = [], [], []
    for row in rows:
        for doc in [row["positive"], *(row.get("negatives") or [])]:
            queries.append(row["query"])
            docs.append(doc)
            instructions.append(row.get("instruction"))
    scores = np.asarray(score_pairs(embedder, queries, docs, instructions), dtype=np.float64).round(6)
    result, offset = [], 0
    for row in rows:
        count = 1 + len(row.get("negatives") or [])
        chunk = scores[offset : offset + count].tolist()
        result.append((chunk[0], chunk[1:]))
        offset += count
    return result


def vector_fn(embedder: CachedEmbedder) -> Callable[[list[str]], np.ndarray]:
    """Unit vectors of dedup texts (as documents: no instruction)."""
    return lambda texts: embedder.encode_documents(texts)
