"""Local sentence-transformers backend: CUDA with fp16 when a GPU is present, CPU otherwise."""

from __future__ import annotations

from typing import Any

import numpy as np

from synth.embed.base import normalize
from synth.errors import ConfigError

INSTALL_HINT = "pip install 'synth[cpu]' (or 'synth[gpu]' on a CUDA machine)"


def pick_device(requested: str | None = None) -> str:
    """`cuda` when torch sees a GPU, else `cpu`; an explicit device wins."""
    if requested:
        return requested
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class LocalEmbedder:
    """A sentence-transformers model, loaded on first use so a fully cached run never loads it."""

    def __init__(self, model: str, batch_size: int = 64, device: str | None = None):
        self.model_name = model
        self.model_id = model
        self.batch_size = batch_size
        self.requested_device = device
        self.calls = 0
        self._model: Any = None

    def _load(self) -> Any:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ConfigError(f"the local embedder needs sentence-transformers: {INSTALL_HINT}") from exc
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # a weight-loading bar per run is noise in a stage log
        device = pick_device(self.requested_device)
        try:
            model = SentenceTransformer(self.model_name, device=device)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load embedding model {self.model_name!r}: {exc}") from exc
        if device.startswith("cuda"):
            model.half()
        return model

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit vectors of `texts`; sentence-transformers sorts by length inside the call, so pass big lists."""
        if self._model is None:
            self._model = self._load()
        self.calls += 1
        vectors = self._model.encode(
            texts, batch_size=self.batch_size, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
        )
        return normalize(vectors)
