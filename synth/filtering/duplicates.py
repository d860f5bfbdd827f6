"""Exact and near duplicates of records across the whole dataset, per the `dedup` and `dedup_on` settings."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np

from synth.errors import ConfigError
from synth.filtering.minhash import NearDuplicateIndex, normalise
from synth.filtering.settings import setting_for
from synth.schema import Task
from synth.tasks import TASKS

VectorFn = Callable[[list[str]], np.ndarray]
"""Unit vectors of texts, for embedding-based near-duplicate detection."""

DEDUP_METHODS = ("exact", "minhash", "embedding", "off")


def exact_key(*texts: str) -> str:
    """Hash of the normalised texts: equal keys are exact duplicates."""
    joined = "\x1f".join(normalise(t) for t in texts)
    return hashlib.blake2b(joined.encode("utf-8"), digest_size=16).hexdigest()


class DuplicateFinder:
    """Exact and near duplicates across the whole dataset, per the `dedup` and `dedup_on` settings."""

    def __init__(self, options: dict[str, Any], vectors: VectorFn | None):
        self.options = options
        self.vectors = vectors
        self.exact: dict[str, str] = {}
        self.near: dict[tuple[str, str, str], NearDuplicateIndex | EmbeddingDuplicateIndex] = {}

    def prefetch(self, rows: list[dict[str, Any]]) -> None:
        """Embed a part's dedup texts in one batch when the embedding method is in use."""
        wanted: dict[tuple[str, str, str], list[str]] = {}
        for row in rows:
            method, kinds = self.settings(row)
            if method != "embedding":
                continue
            for kind in kinds:
                fields = TASKS[Task(row["task"])].dedup_keys.get(kind)
                if fields:
                    wanted.setdefault((row["task"], kind, method), []).extend(row[f] for f in fields)
        for (task, kind, method), texts in wanted.items():
            self.near_index(task, kind, method).prefetch(texts)

    def settings(self, row: dict[str, Any]) -> tuple[str | None, list[str]]:
        method = setting_for(self.options["dedup"], row["task"], row["origin"])
        return method, list(setting_for(self.options["dedup_on"], row["task"], row["origin"]) or [])

    def check(self, row: dict[str, Any], label: str) -> tuple[str, str] | None:
        method, kinds = self.settings(row)
        if method is None:
            return None
        task = Task(row["task"])
        for kind in kinds:
            fields = TASKS[task].dedup_keys.get(kind)
            if fields is None:
                continue
            texts = [row[f] for f in fields]
            key = f"{task.value}/{kind}/{exact_key(*texts)}"
            if key in self.exact:
                return "duplicate", f"same {kind} as {self.exact[key]}"
            if method in ("minhash", "embedding"):
                found = self.near_index(task.value, kind, method).check_and_add(texts, label)
                if found:
                    return "near_duplicate", f"{kind} {method} similarity {found[1]:.3f} to {found[0]}"
            self.exact[key] = label
        return None

    def near_index(self, task: str, kind: str, method: str) -> NearDuplicateIndex | EmbeddingDuplicateIndex:
        key = (task, kind, method)
        if key not in self.near:
            if method == "minhash":
                self.near[key] = NearDuplicateIndex(float(self.options["near_dup_threshold"]))
            elif self.vectors is None:
                raise ConfigError("dedup = \"embedding\" needs an embedder (set embedder and embed_model)")
            else:
                self.near[key] = EmbeddingDuplicateIndex(float(self.options["embedding_dup_threshold"]), self.vectors)
        return self.near[key]


class EmbeddingDuplicateIndex:
    """Near duplicates by cosine of embeddings: texts closer than the threshold to kept texts are duplicates.

    A pair compares field by field (the mean of the fields' cosines), so (a, b) is not a duplicate of (b, a).
    Exact search over the kept vectors (one matrix-vector product per record), fine up to a few hundred thousand
    records; `prefetch` embeds a part's texts in one batch so the per-record checks hit the memo.
    """

    def __init__(self, threshold: float, vectors: VectorFn):
        self.threshold = threshold
        self.vectors = vectors
        self.memo: dict[str, np.ndarray] = {}
        self.matrix: np.ndarray | None = None  # kept vectors, grown by doubling
        self.size = 0
        self.labels: list[str] = []

    def prefetch(self, texts: list[str]) -> None:
        unique = sorted(set(texts))
        self.memo = dict(zip(unique, self.vectors(unique), strict=True)) if unique else {}

    def vector(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in texts if t not in self.memo]
        if missing:
            self.memo.update(zip(missing, self.vectors(missing), strict=True))
        return np.concatenate([self.memo[t] for t in texts]) / np.sqrt(len(texts))

    def check_and_add(self, texts: list[str], label: str) -> tuple[str, float] | None:
        vector = self.vector(texts)
        if self.matrix is not None and self.size:
            similarities = self.matrix[: self.size] @ vector
            best = int(np.argmax(similarities))
            if similarities[best] >= self.threshold:
                return self.labels[best], float(similarities[best])
        if self.matrix is None or self.size == len(self.matrix):
            grown = np.zeros((max(1024, 2 * self.size), vector.size), dtype=np.float32)
            if self.matrix is not None:
                grown[: self.size] = self.matrix
            self.matrix = grown
        self.matrix[self.size] = vector
        self.size += 1
        self.labels.append(label)
        return None
