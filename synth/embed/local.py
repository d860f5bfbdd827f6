"""Local sentence-transformers backend: CUDA with fp16 when a GPU is present; on CPU, bf16 where it is exact enough.

On a CPU with native bf16 (AVX512-BF16, AMX) the forward pass runs under bf16 autocast, about twice as fast as
fp32; a probe checks at load time that its vectors agree with fp32 to a cosine of at least 0.999, else fp32 is used.
The ONNX Runtime backend (synth.embed.onnx) is held to the same 0.999 agreement with PyTorch fp32. Vectors of
every precision and backend count as the same model's (one cache), which that agreement justifies.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
from rich.console import Console

from synth.embed.base import lowest_cosine, normalize
from synth.errors import ConfigError

INSTALL_HINT = "pip install 'synth[cpu]' (or 'synth[gpu]' on a CUDA machine)"
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
BACKENDS = ("auto", "torch", "onnx")
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
    """`cuda` when torch counts a GPU, else `cpu`; an explicit device wins. Embedding and `synth eval`'s training
    both pick their device here."""
    if requested:
        return requested
    import torch

    return "cuda" if torch.cuda.device_count() > 0 else "cpu"


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
    return lowest_cosine(exact, fast)


def onnx_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def pick_backend(requested: str, device: str, precision: str) -> str:
    """`auto` means onnx on a CPU when onnxruntime is installed, unless bf16 or fp16 is asked for (onnx runs fp32).

    Also where torch could run bf16: ONNX Runtime fp32 was faster than torch bf16 on an AVX512-BF16 CPU (README).
    """
    if requested != "auto":
        return requested
    return "onnx" if device == "cpu" and precision in ("auto", "fp32") and onnx_available() else "torch"


class LocalEmbedder:
    """A sentence-transformers model, loaded on first use so a fully cached run never loads it."""

    def __init__(
        self, model: str, batch_size: int = 64, device: str | None = None, precision: str = "auto",
        backend: str = "auto",
    ):
        if precision not in PRECISIONS:
            raise ConfigError(f"embed_precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if backend not in BACKENDS:
            raise ConfigError(f"embed_backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if backend == "onnx" and precision not in ("auto", "fp32"):
            raise ConfigError(f"embed_backend onnx runs fp32; embed_precision {precision} needs embed_backend torch")
        self.model_name = model
        self.model_id = model
        self.batch_size = batch_size
        self.requested_device = device
        self.requested_precision = precision
        self.requested_backend = backend
        self.precision = ""
        self.backend = ""
        self._model: Any = None
        self._onnx: Any = None
        self._context: Any = contextlib.nullcontext()

    def _load(self) -> None:
        """The ONNX encoder when the backend choice and its agreement check allow it, else the torch model."""
        device = "cpu" if self.requested_backend == "onnx" else pick_device(self.requested_device)
        if pick_backend(self.requested_backend, device, self.requested_precision) == "onnx":
            self._onnx = self._load_onnx()
        if self._onnx is not None:
            self.backend, self.precision = "onnx", "fp32"
        else:
            self._model = self._load_torch()
            self.backend = "torch"

    def _load_onnx(self) -> Any:
        """The ONNX encoder, or None (said on stderr) when `auto` finds it unusable or not exact enough."""
        from synth.embed.onnx import load_encoder

        forced = self.requested_backend == "onnx"
        try:
            encoder = load_encoder(self.model_name, PROBE_TEXTS)
        except ConfigError as exc:
            if forced:
                raise
            console.print(f"[embed] onnx backend not usable ({exc}); using torch", highlight=False, markup=False)
            return None
        cosine = encoder.agreement()
        chosen = "onnx" if cosine >= MIN_AGREEMENT or forced else "torch"
        console.print(f"[embed] onnx vs torch fp32 agreement on probe texts: cosine {cosine:.5f}; using {chosen}",
                      highlight=False, markup=False)
        return encoder if chosen == "onnx" else None

    def _load_torch(self) -> Any:
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
        if self._model is None and self._onnx is None:
            self._load()
        if self._onnx is not None:
            return self._onnx.encode(texts, self.batch_size)
        with self._context:
            vectors = self._model.encode(
                texts, batch_size=self.batch_size, convert_to_numpy=True, normalize_embeddings=True,
                show_progress_bar=False,
            )
        return normalize(vectors)
