"""Same-class positives and other-class negatives for CLS records, from a bounded, seeded sample of each class.

A first pass keeps a reservoir of at most `capacity` texts per class (Algorithm R, seeded), so memory is bounded by
classes x capacity whatever the input size. Each record then draws from it with a generator seeded by the record
id, so the draw does not depend on part boundaries or on the order parts are processed in (a resumed run equals a
clean one).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

_POSITIVE_TRIES = 8


@dataclass
class ClassPool:
    capacity: int
    seed: int
    samples: dict[str, list[str]] = field(default_factory=dict)
    seen: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._rng = random.Random(f"class-pool:{self.seed}")

    def add(self, label: str, text: str) -> None:
        """Offer one text of a class to its reservoir."""
        count = self.seen.get(label, 0) + 1
        self.seen[label] = count
        bucket = self.samples.setdefault(label, [])
        if len(bucket) < self.capacity:
            bucket.append(text)
        else:
            slot = self._rng.randrange(count)
            if slot < self.capacity:
                bucket[slot] = text

    def digest(self) -> str:
        """Hash of the sampled texts: a part's output depends on it, so it is part of the stage config."""
        hasher = hashlib.sha256()
        for label in sorted(self.samples):
            hasher.update(f"{label}\x00{self.seen[label]}\x00".encode())
            for text in self.samples[label]:
                hasher.update(text.encode("utf-8") + b"\x00")
        return hasher.hexdigest()

    def draw(self, record_id: str, label: str, text: str, num_negatives: int) -> tuple[str | None, list[str]]:
        """A different text of the same class (None if the class has no other) and texts of other classes."""
        rng = random.Random(f"{self.seed}:{record_id}")
        return self._positive(rng, label, text), self._negatives(rng, label, num_negatives)

    def _positive(self, rng: random.Random, label: str, text: str) -> str | None:
        bucket = self.samples.get(label, [])
        for _ in range(_POSITIVE_TRIES):
            if bucket and (choice := rng.choice(bucket)) != text:
                return choice
        others = [t for t in bucket if t != text]
        return rng.choice(others) if others else None

    def _negatives(self, rng: random.Random, label: str, wanted: int) -> list[str]:
        """Classes drawn uniformly (so a large class does not crowd out the rest), then one text of each draw."""
        other = sorted(name for name in self.samples if name != label)
        available = sum(len(self.samples[name]) for name in other)
        chosen: list[str] = []
        attempts = 0
        while len(chosen) < min(wanted, available) and attempts < 4 * wanted + 8:
            attempts += 1
            candidate = rng.choice(self.samples[rng.choice(other)])
            if candidate not in chosen:
                chosen.append(candidate)
        return chosen
