"""MinHash signatures and their LSH index, for near duplicates over a whole dataset, first occurrence wins.

Texts are compared after normalisation (NFKC, case-folded, punctuation and extra spaces removed), as character
5-grams (works without word boundaries, so also for Chinese), with LSH banding; a candidate is a duplicate when
its estimated Jaccard similarity reaches the threshold.
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np

_PUNCT_OR_SPACE = re.compile(r"[\W_]+")
_MERSENNE = np.uint64((1 << 61) - 1)
_SHINGLE_BASE = np.uint64(1_000_003)
_FIELD_SALT = 0x9E3779B97F4A7C15
SHINGLE = 5
NUM_PERM = 64
BANDS = 16
"""16 bands of 4 rows: pairs from about 0.5 Jaccard up become candidates, then the estimate decides."""


def normalise(text: str) -> str:
    """Text as compared for duplicates: case, width, punctuation and spacing differences vanish."""
    return _PUNCT_OR_SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def shingle_hashes(text: str) -> np.ndarray:
    """Distinct 64-bit polynomial hashes of the text's character 5-grams, computed over code points at once."""
    points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    if points.size < SHINGLE:
        points = np.pad(points, (0, SHINGLE - points.size))
    count = points.size - SHINGLE + 1
    hashes = np.zeros(count, dtype=np.uint64)
    for offset in range(SHINGLE):
        hashes = hashes * _SHINGLE_BASE + points[offset : offset + count]
    return np.unique(hashes)


class MinHasher:
    """Fixed-seed MinHash signatures, so the same text gives the same signature on every run."""

    def __init__(self, num_perm: int = NUM_PERM, seed: int = 1):
        rng = np.random.default_rng(seed)
        self.a = rng.integers(1, int(_MERSENNE), size=num_perm, dtype=np.uint64)
        self.b = rng.integers(0, int(_MERSENNE), size=num_perm, dtype=np.uint64)

    def signature(self, texts: list[str]) -> np.ndarray:
        """One signature over the fields' shingles, each field salted so (a, b) and (b, a) differ."""
        salted = [shingle_hashes(normalise(t)) ^ np.uint64(i * _FIELD_SALT % 2**64) for i, t in enumerate(texts)]
        hashes = np.concatenate(salted)
        # (a * h + b) mod p on uint64 wraps; the wrap is a fixed permutation too, which is all MinHash needs.
        return ((np.outer(hashes, self.a) + self.b) % _MERSENNE).min(axis=0)


class NearDuplicateIndex:
    """Signatures of the texts kept so far, bucketed by LSH band; `check_and_add` keeps first occurrences."""

    def __init__(self, threshold: float, hasher: MinHasher | None = None):
        self.threshold = threshold
        self.hasher = hasher or MinHasher()
        self.rows_per_band = self.hasher.a.size // BANDS
        self.buckets: dict[tuple[int, bytes], list[int]] = {}
        self.signatures = np.zeros((0, self.hasher.a.size), dtype=np.uint64)
        self.labels: list[str] = []

    def check_and_add(self, texts: list[str], label: str) -> tuple[str, float] | None:
        """The label and similarity of an earlier near-duplicate of `texts`, or None (then they are added)."""
        sig = self.hasher.signature(texts)
        keys = [(band, sig[band * self.rows_per_band : (band + 1) * self.rows_per_band].tobytes())
                for band in range(BANDS)]
        candidates = sorted({i for key in keys for i in self.buckets.get(key, ())})
        if candidates:
            similarities = (self.signatures[candidates] == sig).mean(axis=1)
            hits = np.flatnonzero(similarities >= self.threshold)
            if hits.size:  # the earliest kept text wins, as in a sequential scan
                return self.labels[candidates[hits[0]]], float(similarities[hits[0]])
        index = len(self.labels)
        if index == self.signatures.shape[0]:
            grown = np.zeros((max(1024, 2 * index), sig.size), dtype=np.uint64)
            grown[:index] = self.signatures[:index]
            self.signatures = grown
        self.signatures[index] = sig
        self.labels.append(label)
        for key in keys:
            self.buckets.setdefault(key, []).append(index)
        return None
