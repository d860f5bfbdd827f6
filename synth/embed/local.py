"""Local sentence-transformers backend: CUDA with fp16 when a GPU is present; on CPU, bf16 where it is exact enough.

On a CPU with native bf16 (AVX512-BF16, AMX) the forward pass runs under bf16 autocast, about twice as fast as
fp32; a probe checks at load time that its vectors agree with fp32 to a cosine of at least 0.999, else fp32 is used.
The vectors count as the same model's (one cache), which that agreement justifies.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
from rich.console import Console

from synth.embed.base import normalize
from synth.errors import ConfigError

INSTALL_HINT = "pip install 'synth[cpu]' (or 'synth[gpu]' on a CUDA machine)"
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
MIN_AGREEMENT = 0.999
PROBE_TEXTS = [
    "hello",
    "A free and open-source web browser developed by the Mozilla Foundation.",
    "Instruct: Given a query, retrieve passages that answer the query\nQuery:how do I compress a directory",
    "This package contains the shared library, the development headers and the static library; it is "
    "only needed to build programs that link against it. " * 4,
]
console = Console(stderr=True)


def pick_device(requested: str | None = None) -> str:
    """`cuda` when torch sees a GPU, else `cpu`; an explicit device wins."""
    if requested:
        return requested
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_precision(requested: str, device: str) -> str:
    """`auto` means fp16 on a GPU, bf16 on a CPU with native bf16 support, fp32 otherwise."""
    if requested != "auto":
        return requested
    if device.startswith("cuda"):
        return "fp16"
    import torch

    return "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"


def agreement(model: Any, context: Any) -> float:
    """Lowest cosine between fp32 vectors of the probe texts and those computed under `context`."""
    exact = model.encode(PROBE_TEXTS, convert_to_numpy=True, normalize_embeddings=True)
    with context:
        fast = model.encode(PROBE_TEXTS, convert_to_numpy=True, normalize_embeddings=True)
    return float(np.einsum("ij,ij->i", exact, normalize(fast)).min())


class LocalEmbedder:
    """A sentence-transformers model, loaded on first use so a fully cached run never loads it."""

    def __init__(self, model: str, batch_size: int = 64, device: str | None = None, precision: str = "auto"):
        if precision not in PRECISIONS:
            raise ConfigError(f"embed_precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.model_name = model
        self.model_id = model
        self.batch_size = batch_size
        self.requested_device = device
        self.requested_precision = precision
        self.precision = ""
        self.calls = 0
        self._model: Any = None
        self._context: Any = contextlib.nullcontext()

    def _load(self) -> Any:
        try:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as transformers_logging
        except ImportError as exc:
            raise ConfigError(f"the local embedder needs sentence-transformers: {INSTALL_HINT}") from exc
        transformers_logging.disable_progress_bar()  # a weight-loading bar per run is noise in a stage log
        device = pick_device(self.requested_device)
        precision = pick_precision(self.requested_precision, device)
        try:
            model = SentenceTransformer(self.model_name, device=device)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load embedding model {self.model_name!r}: {exc}") from exc
        if precision == "fp16":
            model.half()
        elif precision == "bf16" and device == "cpu":
            import torch

            context = torch.autocast("cpu", dtype=torch.bfloat16)
            cosine = agreement(model, context)
            if cosine >= MIN_AGREEMENT or self.requested_precision == "bf16":
                self._context = context
            else:
                precision = "fp32"
            console.print(f"[embed] bf16 vs fp32 agreement on probe texts: cosine {cosine:.5f}; using {precision}",
                          highlight=False, markup=False)
        self.precision = precision
        return model

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit vectors of `texts`; sentence-transformers sorts by length inside the call, so pass big lists."""
        if self._model is None:
            self._model = self._load()
        self.calls += 1
        with self._context:
            vectors = self._model.encode(
                texts, batch_size=self.batch_size, convert_to_numpy=True, normalize_embeddings=True,
                show_progress_bar=False,
            )
        return normalize(vectors)
