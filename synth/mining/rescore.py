"""Cross-encoder rescoring (`mine --rescore-model`): a sentence-transformers `CrossEncoder` scores (query, passage)
pairs; the mining margins then apply to its scores, and records keep them as teacher scores for distillation."""

from __future__ import annotations

from typing import Any

import numpy as np

from synth.embed.local import pick_device

BATCH_SIZE = 64
"""Pairs per CrossEncoder forward pass."""


class CrossEncoderScorer:
    """Scores (query, passage) pairs with a CrossEncoder, loaded on first use (on a GPU when torch sees one)."""

    def __init__(self, model: str):
        self.model_name = model
        self._model: Any = None

    def score(self, queries: list[str], passages: list[str]) -> np.ndarray:
        if not queries:
            return np.empty(0, dtype=np.float64)
        if self._model is None:
            from sentence_transformers import CrossEncoder

            self._model = CrossEncoder(self.model_name, device=pick_device())
        scores = self._model.predict(list(zip(queries, passages, strict=True)), batch_size=BATCH_SIZE,
                                     show_progress_bar=False, convert_to_numpy=True)
        return np.asarray(scores, dtype=np.float64).reshape(len(queries))

    def candidates(self, queries: list[str], texts: list[str], alive: np.ndarray) -> np.ndarray:
        """Scores of the alive candidates of each query (`texts` in row-major order of `alive`); -inf elsewhere."""
        rows, _ = np.nonzero(alive)
        scores = np.full(alive.shape, -np.inf)
        scores[alive] = self.score([queries[r] for r in rows], texts)
        return scores
