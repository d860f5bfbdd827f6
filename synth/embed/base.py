"""The embedder protocol every backend implements, and L2 normalisation."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Embedder(Protocol):
    """A backend turns final texts (instructions already applied) into unit vectors.

    `model_id` names the vector space: two embedders with the same id must give the same vectors,
    because the cache is keyed by it.
    """

    model_id: str

    def embed(self, texts: list[str]) -> np.ndarray:
        """Vectors of `texts` as a float32 array of shape (len(texts), dim), each row L2-normalised."""
        ...


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32), so inner product is cosine; zero rows stay zero."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def lowest_cosine(left: np.ndarray, right: np.ndarray) -> float:
    """The smallest row-wise cosine of two sets of vectors: how far a faster backend strays from the exact one."""
    return float(np.einsum("ij,ij->i", normalize(left), normalize(right)).min())


def user_cache(name: str) -> Path:
    """`$XDG_CACHE_HOME/synth/NAME` (`~/.cache/...`): what is worth keeping across runs (embeddings, ONNX exports)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "synth" / name
