"""Each mining rule on hand-made candidate tables (ids and scores best first)."""

from __future__ import annotations

import numpy as np

from synth.mining import rules

IDS = np.array([[7, 3, 5, 9, -1], [2, 4, 6, 8, 1]])
SCORES = np.array([[0.90, 0.80, 0.70, 0.60, -np.inf], [0.95, 0.85, 0.50, 0.40, 0.30]], dtype=np.float32)


def test_not_missing_drops_faiss_padding():
    assert rules.not_missing(IDS).tolist() == [[True, True, True, True, False], [True] * 5]


def test_not_query_compares_normalised_text_keys():
    keys = np.array([[11, 12, 13, 14, 15], [21, 22, 23, 24, 25]], dtype=np.uint64)
    keep = rules.not_query(keys, np.array([13, 99], dtype=np.uint64))
    assert keep.tolist() == [[True, True, False, True, True], [True] * 5]


def test_not_positive_covers_every_positive_of_the_query():
    keep = rules.not_positive(IDS, [np.array([3, 9]), np.array([], dtype=np.int64)])
    assert keep.tolist() == [[True, False, True, False, True], [True] * 5]


def test_not_duplicate_of_positive_and_existing_negative():
    keys = np.array([[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]], dtype=np.uint64)
    assert rules.not_duplicate_of_positive(keys, [np.array([2], np.uint64), np.array([10], np.uint64)]).tolist() == [
        [True, False, True, True, True], [True, True, True, True, False]]
    assert rules.not_existing_negative(keys, [np.array([], np.uint64), np.array([6, 7], np.uint64)]).tolist() == [
        [True] * 5, [False, False, True, True, True]]


def test_not_near_duplicate_uses_the_cosine_threshold():
    similarity = np.array([[0.99, 0.98, 0.5, 0.97, 0.1]])
    assert rules.not_near_duplicate(similarity, 0.98).tolist() == [[False, False, True, True, True]]
    assert rules.not_near_duplicate(similarity, None).all()


def test_max_score_is_an_absolute_ceiling():
    assert rules.below_max_score(SCORES, 0.8).tolist() == [[False, False, True, True, True],
                                                           [False, False, True, True, True]]
    assert rules.below_max_score(SCORES, None).all()


def test_margin_is_absolute_below_the_positive():
    keep = rules.below_margin(SCORES, np.array([0.9, 0.6], dtype=np.float32), 0.15)
    assert keep.tolist() == [[False, False, True, True, True], [False, False, False, True, True]]


def test_relative_margin_is_topk_percpos():
    keep = rules.below_relative_margin(SCORES, np.array([0.88, 0.5], dtype=np.float32), 0.05)  # 0.836, 0.475
    assert keep.tolist() == [[False, True, True, True, True], [False, False, False, True, True]]
    negative = rules.below_relative_margin(np.array([[-0.2, -0.3]]), np.array([-0.2]), 0.5)  # -0.3 threshold
    assert negative.tolist() == [[False, False]]


def test_rank_window_counts_only_survivors():
    alive = np.array([[False, True, True, False, True, True]])
    assert rules.in_rank_window(alive, 1, 3).tolist() == [[False, False, True, False, True, False]]


def test_sample_top_takes_the_best_survivors():
    alive = np.array([[False, True, True, True], [True, False, False, False]])
    assert rules.sample_top(alive, 2).tolist() == [[False, True, True, False], [True, False, False, False]]


def test_sample_random_is_seeded_and_only_picks_survivors():
    alive = np.array([[True, False, True, True, True, False, True]] * 20)
    first = rules.sample_random(alive, 2, np.random.default_rng(1))
    again = rules.sample_random(alive, 2, np.random.default_rng(1))
    np.testing.assert_array_equal(first, again)
    assert (first.sum(axis=1) == 2).all() and not (first & ~alive).any()
    assert len({tuple(row) for row in first.tolist()}) > 1  # not always the same two


def test_apply_rules_counts_removals_once_in_order():
    alive, removed = rules.apply_rules(
        [("a", np.array([[False, True, True, True]])), ("b", np.array([[False, False, True, True]])),
         ("window", lambda survivors: rules.in_rank_window(survivors, 0, 1))],
        np.array([[True, True, True, False]]),
    )
    assert alive.tolist() == [[False, False, True, False]]
    assert removed == {"a": 1, "b": 1, "window": 0}


def test_same_document_drops_siblings_only_for_a_record_of_a_document():
    docs = np.array([[5, 0, 5, 6, 0], [5, 5, 0, 6, 7]], dtype=np.uint64)
    keep = rules.not_same_document(docs, np.array([5, 0], dtype=np.uint64))
    assert keep.tolist() == [[False, True, False, True, True], [True] * 5]


def test_positive_ranks_count_the_candidates_above_the_own_positive():
    # Row 0: own positive 5 found at position 2 -> rank 3. Row 1: positive 99 not searched, but candidates
    # below its score were -> rank 3 (two above). Row 2: every searched candidate outscores it -> unknown.
    ids = np.array([[7, 3, 5, 9], [2, 4, 6, 8], [1, 2, 3, 4]])
    scores = np.array([[0.9, 0.8, 0.7, 0.6], [0.95, 0.85, 0.5, 0.4], [0.9, 0.8, 0.7, 0.6]], dtype=np.float32)
    own, positive = np.array([5, 99, 42]), np.array([0.7, 0.6, 0.1], dtype=np.float32)
    ranks = rules.positive_ranks(ids, scores, own, positive, exhausted=False)
    assert ranks.tolist() == [3, 3, rules.UNKNOWN_RANK]
    assert rules.positive_ranks(ids, scores, own, positive, exhausted=True).tolist() == [3, 3, 5]


def test_roundtrip_keeps_checked_records_within_k_and_every_unchecked_one():
    ranks = np.array([1, 3, 37, rules.UNKNOWN_RANK, 50])
    checked = np.array([True, True, True, True, False])
    assert rules.within_roundtrip(ranks, checked, 3).tolist() == [True, True, False, False, True]
    assert rules.within_roundtrip(ranks, checked, 1).tolist() == [True, False, False, False, True]
    assert rules.within_roundtrip(ranks, checked, 0).all()  # 0 switches the rule off
    assert rules.roundtrip_reason(37, 20, 32) == "positive ranked 37 > k=20"
    assert rules.roundtrip_reason(rules.UNKNOWN_RANK, 20, 32) == "positive not in top 32 searched (k=20)"
