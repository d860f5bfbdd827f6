"""Exact and near-duplicate detection over a whole dataset, first occurrence wins.

Exact: texts equal after normalisation (NFKC, case-folded, punctuation and extra spaces removed).
Near: MinHash over character 5-grams (works without word boundaries, so also for Chinese) with LSH banding;
a candidate is a duplicate when its estimated Jaccard similarity reaches the threshold.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import zlib

import numpy as np

_PUNCT_OR_SPACE = re.compile(r"[\W_]+")
_MERSENNE = np.uint64((1 << 61) - 1)
SHINGLE = 5
NUM_PERM = 64
BANDS = 16
"""16 bands of 4 rows: pairs from about 0.5 Jaccard up become candidates, then the estimate decides."""


def normalise(text: str) -> str:
    """Text as compared for duplicates: case, width, punctuation and spacing differences vanish."""
    return _PUNCT_OR_SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def exact_key(*texts: str) -> str:
    """Hash of the normalised texts: equal keys are exact duplicates."""
    joined = "\x1f".join(normalise(t) for t in texts)
    return hashlib.blake2b(joined.encode("utf-8"), digest_size=16).hexdigest()


class MinHasher:
    """Fixed-seed MinHash signatures, so the same text gives the same signature on every run."""

    def __init__(self, num_perm: int = NUM_PERM, seed: int = 1):
        rng = np.random.default_rng(seed)
        self.a = rng.integers(1, int(_MERSENNE), size=num_perm, dtype=np.uint64)
        self.b = rng.integers(0, int(_MERSENNE), size=num_perm, dtype=np.uint64)

    def signature(self, text: str) -> np.ndarray:
        norm = normalise(text)
        grams = {norm[i : i + SHINGLE] for i in range(max(1, len(norm) - SHINGLE + 1))}
        hashes = np.fromiter((zlib.crc32(g.encode("utf-8")) for g in grams), dtype=np.uint64, count=len(grams))
        # (a * h + b) mod p on uint64 wraps; the wrap is a fixed permutation too, which is all MinHash needs.
        return ((np.outer(hashes, self.a) + self.b) % _MERSENNE).min(axis=0)


def jaccard_estimate(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    return float(np.mean(sig_a == sig_b))


class NearDuplicateIndex:
    """Signatures of the texts kept so far, bucketed by LSH band; `check_and_add` keeps first occurrences."""

    def __init__(self, threshold: float, hasher: MinHasher | None = None):
        self.threshold = threshold
        self.hasher = hasher or MinHasher()
        self.rows_per_band = self.hasher.a.size // BANDS
        self.buckets: dict[tuple[int, bytes], list[int]] = {}
        self.signatures: list[np.ndarray] = []
        self.labels: list[str] = []

    def check_and_add(self, text: str, label: str) -> tuple[str, float] | None:
        """The label and similarity of an earlier near-duplicate of `text`, or None (then `text` is added)."""
        sig = self.hasher.signature(text)
        keys = [(band, sig[band * self.rows_per_band : (band + 1) * self.rows_per_band].tobytes())
                for band in range(BANDS)]
        candidates = sorted({i for key in keys for i in self.buckets.get(key, ())})
        for i in candidates:
            similarity = jaccard_estimate(sig, self.signatures[i])
            if similarity >= self.threshold:
                return self.labels[i], similarity
        index = len(self.signatures)
        self.signatures.append(sig)
        self.labels.append(label)
        for key in keys:
            self.buckets.setdefault(key, []).append(index)
        return None
