"""The embedding cache's key index across many writes: every vector found, nothing invented, reopen equal."""

from __future__ import annotations

import numpy as np

from synth.embed.cache import FANOUT, RECENT_SHARE, EmbeddingCache, KeyTable


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
    # Small shards were merged FANOUT at a time: few files, every vectors file with its keys file.
    shard_files = sorted(cache.directory.glob("*.npy"))
    assert len(shard_files) < 2 * 2 * FANOUT
    assert sorted(p.name.replace("keys", "vectors") for p in cache.directory.glob("*.keys.npy")) == sorted(
        p.name for p in cache.directory.glob("*.vectors.npy"))
    unknown = random_keys(rng, 30)
    for opened in (cache, EmbeddingCache(tmp_path, "model")):
        assert len(opened) == len(keys)
        assert np.array_equal(opened.gather(opened.find(keys)), vectors)
        assert (opened.find(unknown) == -1).all()


def test_two_writers_merging_in_one_folder_lose_nothing(tmp_path):
    """Two processes open a folder of small shards; one merges them away while the other still maps them."""
    rng = np.random.default_rng(3)
    written: dict[bytes, np.ndarray] = {}

    def put(cache: EmbeddingCache) -> None:
        keys, vectors = random_keys(rng, 25), rng.random((25, 4), dtype=np.float32)
        cache.put(keys, vectors)
        written.update(zip(keys.tolist(), vectors, strict=True))

    seed = EmbeddingCache(tmp_path, "model")
    for _ in range(FANOUT - 1):
        put(seed)
    first, second = EmbeddingCache(tmp_path, "model"), EmbeddingCache(tmp_path, "model")
    put(first)  # FANOUT shards in tier 0: first merges the shared ones and deletes their files
    put(second)  # second's merge finds those files gone and leaves its shards as they are
    for round_number in range(4 * FANOUT):
        put(second if round_number % 2 else first)
    assert len(list(tmp_path.rglob("*.keys.npy"))) <= 2 * FANOUT + 2  # both went on merging their own shards
    keys, vectors = np.array(list(written), dtype="S16"), np.stack(list(written.values()))
    reader = EmbeddingCache(tmp_path, "model")
    assert np.array_equal(reader.gather(reader.find(keys)), vectors)
    for cache in (first, second):  # each still reads what it knows, through its own mappings
        known = cache.find(keys)
        assert np.array_equal(cache.gather(known[known >= 0]), vectors[known >= 0])
