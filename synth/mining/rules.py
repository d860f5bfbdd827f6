"""Each mining rule as a small pure function over a candidate table.

A candidate table is what the index returned for a batch of queries: `ids` and `scores` of shape (rows, k),
best first. Every rule returns a boolean mask of the candidates it keeps; `apply_rules` chains them and counts
how many still-alive candidates each one removed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from synth.mining.corpus import NO_DOCUMENT

UNKNOWN_RANK = 0
"""Rank of a positive that more than every searched candidate outscores: beyond the search, not measured."""

Rule = tuple[str, np.ndarray | Callable[[np.ndarray], np.ndarray]]
"""A named keep-mask, or a function of the survivors so far that returns one (the rank window, sampling)."""


def in_any(values: np.ndarray, per_row: Sequence[np.ndarray]) -> np.ndarray:
    """Mask of `values[r, j]` that occur in `per_row[r]` (a small set per row: positives, negatives)."""
    keep = np.zeros(values.shape, dtype=bool)
    for row, members in enumerate(per_row):
        if len(members):
            keep[row] = np.isin(values[row], members)
    return keep


def not_missing(ids: np.ndarray) -> np.ndarray:
    """FAISS pads short result lists with id -1."""
    return ids >= 0


def not_query(candidate_text_keys: np.ndarray, query_text_keys: np.ndarray) -> np.ndarray:
    """A passage whose normalised text is the query itself is no negative of it."""
    return candidate_text_keys != query_text_keys[:, None]


def not_positive(ids: np.ndarray, positive_ids: Sequence[np.ndarray]) -> np.ndarray:
    """Never any positive of the same query (a query with several positives is several records)."""
    return ~in_any(ids, positive_ids)


def not_same_document(candidate_doc_keys: np.ndarray, query_doc_keys: np.ndarray) -> np.ndarray:
    """Never a passage of the query record's own document: a chunk's siblings are its likeliest false negatives.

    A record of no document (key NO_DOCUMENT) has no siblings; candidates of no document are never siblings.
    """
    return (candidate_doc_keys != query_doc_keys[:, None]) | (query_doc_keys == NO_DOCUMENT)[:, None]


def not_duplicate_of_positive(candidate_text_keys: np.ndarray, positive_text_keys: Sequence[np.ndarray]) -> np.ndarray:
    """Drop texts equal to a positive after case and whitespace normalisation (exact duplicates)."""
    return ~in_any(candidate_text_keys, positive_text_keys)


def not_near_duplicate(similarity_to_positive: np.ndarray, threshold: float | None) -> np.ndarray:
    """Drop passages whose cosine to any positive of the query reaches `threshold` (near-exact duplicates)."""
    if threshold is None:
        return np.ones(similarity_to_positive.shape, dtype=bool)
    return similarity_to_positive < threshold


def not_existing_negative(candidate_text_keys: np.ndarray, negative_text_keys: Sequence[np.ndarray]) -> np.ndarray:
    """A passage the record already has as a negative is not mined again."""
    return ~in_any(candidate_text_keys, negative_text_keys)


def below_max_score(scores: np.ndarray, max_score: float | None) -> np.ndarray:
    """TopK-Abs: keep negatives scoring below an absolute ceiling."""
    if max_score is None:
        return np.ones(scores.shape, dtype=bool)
    return scores < max_score


def below_margin(scores: np.ndarray, positive_scores: np.ndarray, margin: float | None) -> np.ndarray:
    """TopK-MarginPos: keep a negative only if it scores below positive - margin."""
    if margin is None:
        return np.ones(scores.shape, dtype=bool)
    return scores < (positive_scores - margin)[:, None]


def below_relative_margin(scores: np.ndarray, positive_scores: np.ndarray, relative: float | None) -> np.ndarray:
    """TopK-PercPos: keep a negative only if it scores below positive * (1 - r) (sign-safe: pos - |pos| * r)."""
    if relative is None:
        return np.ones(scores.shape, dtype=bool)
    return scores < (positive_scores - np.abs(positive_scores) * relative)[:, None]


def in_rank_window(alive: np.ndarray, range_min: int, range_max: int) -> np.ndarray:
    """Keep the alive candidates ranked in [range_min, range_max) among the alive ones (rank 0 = best)."""
    rank = np.cumsum(alive, axis=1) - 1
    return alive & (rank >= range_min) & (rank < range_max)


def sample_top(alive: np.ndarray, count: int) -> np.ndarray:
    """The `count` best alive candidates of each row."""
    return alive & (np.cumsum(alive, axis=1) <= count)


def sample_random(alive: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` alive candidates of each row drawn uniformly with a seeded generator (order of rank kept)."""
    priority = np.where(alive, rng.random(alive.shape), np.inf)
    chosen = np.argsort(priority, axis=1, kind="stable")[:, :count]
    picked = np.zeros(alive.shape, dtype=bool)
    np.put_along_axis(picked, chosen, True, axis=1)
    return picked & alive


def apply_rules(rules: Sequence[Rule], start: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
    """AND the rules' masks in order; returns survivors and, per rule, the alive candidates it removed."""
    alive = start.copy()
    removed: dict[str, int] = {}
    for name, rule in rules:
        keep = rule if isinstance(rule, np.ndarray) else rule(alive)
        removed[name] = int((alive & ~keep).sum())
        alive &= keep
    return alive, removed


def positive_ranks(
    ids: np.ndarray, scores: np.ndarray, own_positive: np.ndarray, positive_scores: np.ndarray, exhausted: bool
) -> np.ndarray:
    """1-based rank of each record's own positive among the corpus for its query: 1 + the candidates above it.

    Known when the positive is among the searched candidates, when some searched candidate scores below it, or
    when the search returned the whole corpus (`exhausted`); UNKNOWN_RANK otherwise.
    """
    valid = ids >= 0
    other = valid & (ids != own_positive[:, None])
    above = (other & (scores > positive_scores[:, None])).sum(axis=1)
    found = (ids == own_positive[:, None]).any(axis=1)
    known = found | (above < other.sum(axis=1)) | exhausted
    return np.where(known, above + 1, UNKNOWN_RANK)


def within_roundtrip(ranks: np.ndarray, checked: np.ndarray, k: int) -> np.ndarray:
    """Promptagator's round-trip filter: a checked record is kept only if its positive ranks in the top k.

    `k` 0 switches the rule off; a rank beyond the search (UNKNOWN_RANK) is outside any k that was searched.
    """
    if k <= 0:
        return np.ones(ranks.shape, dtype=bool)
    return ~checked | ((ranks != UNKNOWN_RANK) & (ranks <= k))


def roundtrip_reason(rank: int, k: int, searched: int) -> str:
    """Why a record failed the round trip, with its rank."""
    if rank == UNKNOWN_RANK:
        return f"positive not in top {searched} searched (k={k})"
    return f"positive ranked {rank} > k={k}"
