"""Retrieval metrics by exact search: the one definition of nDCG@10, Recall@10, Recall@100 and MRR@10 in synth,
and the STS one, the Spearman correlation of pair cosines with the gold scores.

Relevance is binary (a qrel with score > 0), as in sentence-transformers' `InformationRetrievalEvaluator`, which a
test checks these numbers against. Search is exact: cosine of normalized vectors over the whole corpus.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")
STS_METRIC = "spearman"
DEPTH = 100
"""How deep the ranking is searched: the largest cut-off of `METRICS`."""
QUERY_BLOCK = 1024
"""Queries scored at once, so the score matrix stays small for a large corpus."""


def rank_metrics(rankings: Sequence[Sequence[int]], relevant: Sequence[set[int]]) -> dict[str, float]:
    """Mean of each metric over queries, from each query's ranked corpus indices (best first)."""
    totals = dict.fromkeys(METRICS, 0.0)
    for ranked, wanted in zip(rankings, relevant, strict=True):
        if not wanted:
            raise ValueError("every query needs at least one relevant document")
        hits = [index in wanted for index in ranked]
        dcg = sum(1.0 / math.log2(rank + 2) for rank, hit in enumerate(hits[:10]) if hit)
        ideal = sum(1.0 / math.log2(rank + 2) for rank in range(min(len(wanted), 10)))
        totals["ndcg@10"] += dcg / ideal
        totals["recall@10"] += sum(hits[:10]) / len(wanted)
        totals["recall@100"] += sum(hits[:100]) / len(wanted)
        first = next((rank for rank, hit in enumerate(hits[:10]) if hit), None)
        totals["mrr@10"] += 1.0 / (first + 1) if first is not None else 0.0
    return {name: total / len(relevant) for name, total in totals.items()}


def normalized(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


def exact_search(queries: np.ndarray, corpus: np.ndarray, depth: int = DEPTH) -> list[list[int]]:
    """The `depth` corpus indices of highest cosine for each query, best first (ties: the lower index first)."""
    queries, corpus = normalized(queries), normalized(corpus)
    depth = min(depth, len(corpus))
    rankings: list[list[int]] = []
    for start in range(0, len(queries), QUERY_BLOCK):
        scores = queries[start:start + QUERY_BLOCK] @ corpus.T
        order = np.argsort(-scores, axis=1, kind="stable")[:, :depth]
        rankings += order.tolist()
    return rankings


def retrieval_metrics(queries: np.ndarray, corpus: np.ndarray, relevant: Sequence[set[int]]) -> dict[str, float]:
    """nDCG@10, Recall@10, Recall@100 and MRR@10 of query vectors searching corpus vectors (row i of `queries`
    is relevant to the corpus rows in `relevant[i]`)."""
    return rank_metrics(exact_search(queries, corpus), relevant)


def sts_spearman(first: np.ndarray, second: np.ndarray, gold: Sequence[float]) -> float:
    """Spearman correlation of the cosine of each pair (row i of `first` with row i of `second`) with its gold
    score, as sentence-transformers' `EmbeddingSimilarityEvaluator` reports it (`spearman_cosine`)."""
    from scipy.stats import spearmanr

    cosines = np.einsum("ij,ij->i", normalized(first), normalized(second))
    return float(spearmanr(cosines, np.asarray(gold, dtype=np.float64)).statistic)
