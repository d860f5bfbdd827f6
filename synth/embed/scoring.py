"""Cosine scores of (query, document) pairs through an embedder and its cache (used by mining and the filter)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from synth.embed.cached import CachedEmbedder


def score_pairs(
    embedder: CachedEmbedder,
    queries: Sequence[str],
    docs: Sequence[str],
    instructions: Sequence[str | None],
) -> np.ndarray:
    """Cosine of each (query, doc) pair, float32 of len(queries); queries get their instruction, docs none.

    Score (query, positive) and (query, negative) pairs the same way: pass the negatives as `docs`.
    Every distinct text is embedded once and cached on disk, so scoring again costs no model call.
    """
    if not len(queries):
        return np.empty(0, dtype=np.float32)
    query_vectors = embedder.encode_queries(queries, instructions)
    doc_vectors = embedder.encode_documents(docs)
    return np.einsum("ij,ij->i", query_vectors, doc_vectors).astype(np.float32)
