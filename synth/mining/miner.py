"""Mine one batch of retrieval records: search, apply the rules in order, sample, write scores and negatives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from synth.embed.cached import CachedEmbedder
from synth.errors import ConfigError
from synth.mining import rules
from synth.mining.artifact import MiningIndex
from synth.mining.corpus import document_key, keys_of, normalized_key
from synth.mining.index import search
from synth.mining.options import MINE_DEFAULTS, SAMPLING
from synth.mining.rescore import CrossEncoderScorer

RULE_ORDER = (
    "query", "positive", "same_document", "duplicate", "near_duplicate", "existing_negative",
    "max_score", "margin", "relative_margin", "rank_window",
)
"""Rules in the order they run: who a candidate is first, then how it scores, then where it ranks."""


@dataclass(frozen=True)
class MineSettings:
    """The mining rules' parameters (see `synth mine --help`)."""

    range_min: int = MINE_DEFAULTS["range_min"]
    range_max: int = MINE_DEFAULTS["range_max"]
    num_negatives: int = MINE_DEFAULTS["num_negatives"]
    sampling: str = MINE_DEFAULTS["sampling"]
    seed: int = MINE_DEFAULTS["seed"]
    max_score: float | None = None
    margin: float | None = None
    relative_margin: float | None = MINE_DEFAULTS["relative_margin"]
    dup_threshold: float | None = MINE_DEFAULTS["dup_threshold"]
    roundtrip_k: int = MINE_DEFAULTS["roundtrip_k"]
    roundtrip_origins: tuple[str, ...] = tuple(MINE_DEFAULTS["roundtrip_origins"])
    rescore_model: str | None = None

    def check(self) -> MineSettings:
        """Refuse settings that cannot mine anything, naming the option."""
        if self.range_min < 0 or self.range_max <= self.range_min:
            raise ConfigError(f"need 0 <= range_min < range_max, got {self.range_min} and {self.range_max}")
        if not 1 <= self.num_negatives <= self.range_max - self.range_min:
            raise ConfigError(
                f"num_negatives must be between 1 and range_max - range_min ({self.range_max - self.range_min}), "
                f"got {self.num_negatives}"
            )
        if self.sampling not in SAMPLING:
            raise ConfigError(f"sampling must be 'top' or 'random', got {self.sampling!r}")
        if self.relative_margin is not None and not 0 <= self.relative_margin < 1:
            raise ConfigError(f"relative_margin must be in [0, 1), got {self.relative_margin}")
        if self.dup_threshold is not None and not 0 < self.dup_threshold <= 1:
            raise ConfigError(f"dup_threshold must be in (0, 1], got {self.dup_threshold}")
        if self.roundtrip_k < 0:
            raise ConfigError(f"roundtrip_k must be 0 (off) or more, got {self.roundtrip_k}")
        return self


@dataclass
class MineResult:
    """Mined rows (input order, dropped ones left out), the dropped rows' input positions with why, and counts."""

    rows: list[dict[str, Any]]
    dropped: dict[int, str]
    counts: dict[str, int]


def max_similarity_to_positives(
    vectors: np.ndarray, candidate_ids: np.ndarray, positive_ids: list[np.ndarray]
) -> np.ndarray:
    """Cosine of each candidate to the closest positive of its query (vectors read from the memory map)."""
    similarity = np.full(candidate_ids.shape, -np.inf, dtype=np.float32)
    safe_ids = np.where(candidate_ids >= 0, candidate_ids, 0)
    for row, positives in enumerate(positive_ids):
        if len(positives):
            candidates = vectors[safe_ids[row]]
            similarity[row] = (candidates @ vectors[np.sort(positives)].T).max(axis=1)
    return similarity


def existing_negatives(rows: list[dict[str, Any]], embedder: CachedEmbedder, query_vectors: np.ndarray):
    """Scores and normalised keys of the negatives records already carry (LLM-written, source)."""
    flat = [n for row in rows for n in row.get("negatives") or []]
    owner = np.repeat(np.arange(len(rows)), [len(row.get("negatives") or []) for row in rows])
    vectors = embedder.encode_documents(flat) if flat else np.empty((0, query_vectors.shape[1]), np.float32)
    scores = np.einsum("ij,ij->i", vectors, query_vectors[owner]) if flat else np.empty(0, np.float32)
    splits = np.cumsum([len(row.get("negatives") or []) for row in rows])[:-1]
    keys = np.split(keys_of(flat, normalized_key), splits)
    return np.split(scores.astype(np.float64), splits), keys


def identity_rules(
    settings: MineSettings,
    *,
    candidate_ids: np.ndarray,
    candidate_norm_keys: np.ndarray,
    query_norm_keys: np.ndarray,
    candidate_doc_keys: np.ndarray,
    query_doc_keys: np.ndarray,
    positive_ids: list[np.ndarray],
    positive_norm_keys: list[np.ndarray],
    similarity_to_positive: np.ndarray,
    negative_norm_keys: list[np.ndarray],
) -> list[rules.Rule]:
    """The rules that ask who a candidate is (RULE_ORDER up to `existing_negative`): they need no score."""
    return [
        ("query", rules.not_query(candidate_norm_keys, query_norm_keys)),
        ("positive", rules.not_positive(candidate_ids, positive_ids)),
        ("same_document", rules.not_same_document(candidate_doc_keys, query_doc_keys)),
        ("duplicate", rules.not_duplicate_of_positive(candidate_norm_keys, positive_norm_keys)),
        ("near_duplicate", rules.not_near_duplicate(similarity_to_positive, settings.dup_threshold)),
        ("existing_negative", rules.not_existing_negative(candidate_norm_keys, negative_norm_keys)),
    ]


def score_rules(settings: MineSettings, candidate_scores: np.ndarray, margin_scores: np.ndarray) -> list[rules.Rule]:
    """The rules that ask how a candidate scores and ranks (the rest of RULE_ORDER), on the embedder's scores or
    the cross-encoder's."""
    return [
        ("max_score", rules.below_max_score(candidate_scores, settings.max_score)),
        ("margin", rules.below_margin(candidate_scores, margin_scores, settings.margin)),
        ("relative_margin", rules.below_relative_margin(candidate_scores, margin_scores, settings.relative_margin)),
        ("rank_window", lambda alive: rules.in_rank_window(alive, settings.range_min, settings.range_max)),
    ]


class Miner:
    """Mines records against a `MiningIndex` with one embedder and one set of rules."""

    def __init__(self, index: MiningIndex, embedder: CachedEmbedder, settings: MineSettings, search_batch_size: int):
        self.index = index
        self.embedder = embedder
        self.settings = settings.check()
        self.search_batch_size = search_batch_size
        self.teacher = CrossEncoderScorer(settings.rescore_model) if settings.rescore_model else None

    def mine(self, rows: list[dict[str, Any]], rng: np.random.Generator) -> MineResult:
        """Rows with `positive_score`, `roundtrip_rank`, scored existing negatives and mined ones appended.

        A record whose origin is in `roundtrip_origins` and whose positive ranks below `roundtrip_k` is dropped
        (mined nothing, counted in nothing but `roundtrip_dropped`).
        """
        index, settings = self.index, self.settings
        queries = [r["query"] for r in rows]
        query_vectors = self.embedder.encode_queries(queries, [r.get("instruction") for r in rows])
        own_positive = index.item_ids([r["positive"] for r in rows])
        positive_ids = index.positives_of(queries)
        positive_scores = np.einsum("ij,ij->i", query_vectors, index.vectors[own_positive])
        # Margins are measured from the query's hardest positive, so no positive of it looks like a negative.
        margin_scores = np.array(
            [(index.vectors[np.sort(p)] @ q).min() for p, q in zip(positive_ids, query_vectors, strict=True)],
            dtype=np.float32,
        )
        neg_scores, neg_keys = existing_negatives(rows, self.embedder, query_vectors)
        widest_group = max(len(p) for p in positive_ids)
        k = max(settings.range_max + widest_group + 1, settings.roundtrip_k + 1)
        scores, ids = search(index.index, query_vectors, k, self.search_batch_size)
        ranks = rules.positive_ranks(ids, scores, own_positive, positive_scores, exhausted=k >= index.n_index)
        checked = np.array([r.get("origin") in settings.roundtrip_origins for r in rows], dtype=bool)
        kept = rules.within_roundtrip(ranks, checked, settings.roundtrip_k)
        safe_ids = np.where(ids >= 0, ids, 0)
        alive, removed = rules.apply_rules(
            identity_rules(
                settings,
                candidate_ids=ids,
                candidate_norm_keys=index.norm_keys[safe_ids],
                query_norm_keys=keys_of(queries, normalized_key),
                candidate_doc_keys=index.doc_keys[safe_ids],
                query_doc_keys=np.array([document_key(r.get("document_id")) for r in rows], dtype=np.uint64),
                positive_ids=positive_ids,
                positive_norm_keys=[index.norm_keys[p] for p in positive_ids],
                similarity_to_positive=max_similarity_to_positives(index.vectors, ids, positive_ids),
                negative_norm_keys=neg_keys,
            ),
            rules.not_missing(ids) & kept[:, None],  # a dropped record mines nothing and counts in no rule
        )
        teacher = self._teacher_scores(rows, ids, alive, positive_ids) if self.teacher else None
        ranked_by, margin_by = (teacher["candidates"], teacher["margin"]) if teacher else (scores, margin_scores)
        alive, by_score = rules.apply_rules(score_rules(settings, ranked_by, margin_by), alive)
        removed.update(by_score)
        if settings.sampling == "top":
            chosen = rules.sample_top(alive, settings.num_negatives)
        else:
            chosen = rules.sample_random(alive, settings.num_negatives, rng)
        texts = iter(self.index.texts_of(ids[chosen]))  # one read for the batch, row by row in rank order
        out = [
            self._updated(row, [next(texts) for _ in range(chosen[i].sum())], scores[i][chosen[i]],
                          float(positive_scores[i]), neg_scores[i], int(ranks[i]))
            | (self._teacher_fields(teacher, i, chosen[i]) if teacher else {})
            for i, row in enumerate(rows) if kept[i]
        ]
        dropped = {int(i): rules.roundtrip_reason(int(ranks[i]), settings.roundtrip_k, ids.shape[1])
                   for i in np.flatnonzero(~kept)}
        counts = {f"removed_{name}": removed[name] for name in RULE_ORDER}
        mined = chosen.sum(axis=1)
        counts.update(
            negatives_mined=int(mined.sum()),
            rows_short=int((mined[kept] < settings.num_negatives).sum()),
            existing_negatives_scored=sum(len(s) for s, keep in zip(neg_scores, kept, strict=True) if keep),
            roundtrip_checked=int(checked.sum()) if settings.roundtrip_k else 0,
            roundtrip_dropped=len(dropped),
        )
        return MineResult(out, dropped, counts)

    def _teacher_scores(self, rows: list[dict[str, Any]], ids: np.ndarray, alive: np.ndarray,
                        positive_ids: list[np.ndarray]) -> dict[str, Any]:
        """Cross-encoder scores of the candidates still alive, of each query's positives (the margins are measured
        from the lowest, as with the embedder) and of its own positive and existing negatives."""
        assert self.teacher is not None
        queries = [r["query"] for r in rows]
        candidates = self.teacher.candidates(queries, self.index.texts_of(ids[alive]), alive)
        group = [self.index.texts_of(np.sort(p)) for p in positive_ids]
        flat = self.teacher.score([q for q, texts in zip(queries, group, strict=True) for _ in texts],
                                  [t for texts in group for t in texts])
        margin = np.array([chunk.min() for chunk in np.split(flat, np.cumsum([len(g) for g in group])[:-1])])
        own = self.teacher.score(queries, [r["positive"] for r in rows])
        existing = [r.get("negatives") or [] for r in rows]
        old = self.teacher.score([q for q, negs in zip(queries, existing, strict=True) for _ in negs],
                                 [n for negs in existing for n in negs])
        return {"candidates": candidates, "margin": margin, "positive": own,
                "existing": np.split(old, np.cumsum([len(n) for n in existing])[:-1])}

    @staticmethod
    def _teacher_fields(teacher: dict[str, Any], row: int, chosen: np.ndarray) -> dict[str, Any]:
        return {"positive_teacher_score": float(teacher["positive"][row]),
                "negative_teacher_scores": [float(s) for s in teacher["existing"][row]]
                + [float(s) for s in teacher["candidates"][row][chosen]]}

    @staticmethod
    def _updated(
        row: dict[str, Any], texts: list[str], scores: np.ndarray, positive_score: float, old_scores: np.ndarray,
        rank: int,
    ) -> dict[str, Any]:
        negatives = list(row.get("negatives") or [])
        origins = list(row.get("negative_origins") or [])
        return {
            **row,
            "positive_score": positive_score,
            "negatives": negatives + texts,
            "negative_scores": [float(s) for s in old_scores] + [float(s) for s in scores],
            "negative_origins": origins + ["mined"] * len(texts),
            "roundtrip_rank": rank if rank != rules.UNKNOWN_RANK else None,
        }
