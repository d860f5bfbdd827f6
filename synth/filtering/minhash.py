"""MinHash near duplicates over a whole dataset, first occurrence wins, on rensa's Rust MinHash and LSH.

Texts are compared after normalisation (NFKC, case-folded, punctuation and extra spaces removed), as character
5-grams (works without word boundaries, so also for Chinese), with LSH banding; a candidate is a duplicate when
its estimated Jaccard similarity reaches the threshold. rensa is used because it signs 2.8x and scans 4x faster
than the numpy code it replaced, at the same recall (docs/benchmarks.md).
"""

from __future__ import annotations

import re
import unicodedata

from rensa import RMinHash, RMinHashLSH

_PUNCT_OR_SPACE = re.compile(r"[\W_]+")
SHINGLE = 5
NUM_PERM = 64
BANDS = 16
"""16 bands of 4 rows: pairs from about 0.5 Jaccard up become candidates, then the estimate decides."""
SEED = 1
"""Fixed, so the same text gives the same signature on every run."""


def normalise(text: str) -> str:
    """Text as compared for duplicates: case, width, punctuation and spacing differences vanish."""
    return _PUNCT_OR_SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def shingles(text: str) -> list[str]:
    """The normalised text's character 5-grams (a text shorter than that: the whole text)."""
    text = normalise(text)
    return [text[i : i + SHINGLE] for i in range(max(1, len(text) - SHINGLE + 1))]


def signature(texts: list[str]) -> RMinHash:
    """One signature over the fields' shingles, each tagged with its field's position so (a, b) and (b, a) differ."""
    minhash = RMinHash(num_perm=NUM_PERM, seed=SEED)
    minhash.update([f"{field}\x1f{gram}" for field, text in enumerate(texts) for gram in shingles(text)])
    return minhash


class NearDuplicateIndex:
    """Signatures of the texts kept so far in an LSH index; `check_and_add` keeps first occurrences."""

    def __init__(self, threshold: float):
        self.threshold = threshold
        self.lsh = RMinHashLSH(threshold, NUM_PERM, BANDS)
        self.signatures: list[RMinHash] = []
        self.labels: list[str] = []

    def check_and_add(self, texts: list[str], label: str) -> tuple[str, float] | None:
        """The label and similarity of an earlier near-duplicate of `texts`, or None (then they are added)."""
        minhash = signature(texts)
        for kept in sorted(self.lsh.query(minhash)):  # the earliest kept text wins, as in a sequential scan
            similarity = minhash.jaccard(self.signatures[kept])
            if similarity >= self.threshold:
                return self.labels[kept], float(similarity)
        self.lsh.insert(len(self.labels), minhash)
        self.signatures.append(minhash)
        self.labels.append(label)
        return None
