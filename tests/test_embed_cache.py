"""The embedding cache's key index across many writes: every vector found, nothing invented, reopen equal."""

from __future__ import annotations

import numpy as np

from synth.embed.cache import RECENT_SHARE, EmbeddingCache, KeyTable


def random_keys(rng: np.random.Generator, count: int) -> np.ndarray:
    return np.frombuffer(rng.bytes(16 * count), dtype="S16")


def test_key_tables_merge_in_order_and_find_every_key():
    rng = np.random.default_rng(1)
    left_keys, right_keys = random_keys(rng, 500), random_keys(rng, 70)
    left = KeyTable.sorted_from(left_keys, np.zeros(500, dtype=np.int32), np.arange(500))
    right = KeyTable.sorted_from(right_keys, np.ones(70, dtype=np.int32), np.arange(70))
    merged = left.merged(right)
    assert len(merged) == 570 and np.all(merged.keys[:-1] <= merged.keys[1:])
    found = merged.find(right_keys)
    assert np.array_equal(merged.shard_of[found], np.ones(70)) and np.array_equal(merged.row_of[found], np.arange(70))
    assert (merged.find(random_keys(rng, 50)) == -1).all()


def test_many_small_writes_stay_findable_before_and_after_reopening(tmp_path):
    rng = np.random.default_rng(2)
    cache = EmbeddingCache(tmp_path, "model")
    written_keys, written_vectors = [], []
    for size in [3, 40, 1, 200, 7] * (RECENT_SHARE + 2):  # enough writes to merge the recent table several times
        keys, vectors = random_keys(rng, size), rng.random((size, 4), dtype=np.float32)
        cache.put(keys, vectors)
        written_keys.append(keys)
        written_vectors.append(vectors)
        everything = np.concatenate(written_keys)
        assert (cache.find(everything) >= 0).all()
    keys, vectors = np.concatenate(written_keys), np.concatenate(written_vectors)
    unknown = random_keys(rng, 30)
    for opened in (cache, EmbeddingCache(tmp_path, "model")):
        assert len(opened) == len(keys)
        assert np.array_equal(opened.gather(opened.find(keys)), vectors)
        assert (opened.find(unknown) == -1).all()
