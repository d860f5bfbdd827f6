"""Embedding cosine between texts, for the checks and the persona choice that can use an embedder."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from synth.embed import build_embedder
from synth.embed.options import EMBED_OPTIONS
from synth.registry import Option

PANEL = "Embedder (optional)"
OPTIONAL_EMBEDDER = Option("embedder", str, None, "Use an embedder (local or api) for similarity.",
                           default_text="lexical measures only", panel=PANEL)
OPTIONAL_EMBED_OPTIONS: tuple[Option, ...] = tuple(
    OPTIONAL_EMBEDDER if o.key == "embedder" else
    o.but(panel=PANEL, config_only=o.key not in ("embed_model", "embed_cache")) for o in EMBED_OPTIONS)
"""Embedding options of the synthesis stages: no embedder unless one is configured (then lexical measures)."""


class TextSimilarity:
    """Cosine of passages through the shared cached embedder (built only when configured)."""

    def __init__(self, options: dict[str, Any]):
        self.embedder = build_embedder(options)
        self._worker: ThreadPoolExecutor | None = None

    def __getstate__(self) -> dict[str, Any]:
        # Sent to a cluster's worker: the thread stays here, the worker starts its own on first use.
        return {**self.__dict__, "_worker": None}

    def vectors(self, texts: list[str]) -> np.ndarray:
        return self.embedder.encode_documents(texts)

    def pairwise(self, left: list[str], right: list[str]) -> np.ndarray:
        """Cosine of left[i] with right[i]."""
        if not left:
            return np.empty(0, dtype=np.float32)
        return _rowwise_cosine(self.vectors(left), self.vectors(right))

    async def apairwise(self, left: list[str], right: list[str]) -> np.ndarray:
        """`pairwise` for a check on an event loop (the LLM engine's), each side embedded off that loop.

        The API embedder refuses to wait for its endpoint inside a running loop, and a local model's forward pass
        would stall every request in flight. So the cache is read and written here, on the loop (one thread, as
        when the check ran synchronously), and only what it lacks is embedded elsewhere: by the API embedder on its
        own engine's loop, several checks' requests in flight at once, or by the local model on one thread of its
        own (the model is never run by two threads at once). Each side is one call with the same texts as
        `pairwise`'s, so the vectors, and the cosines, are the same.
        """
        if not left:
            return np.empty(0, dtype=np.float32)
        vectors = [await self.embedder.aencode(list(side), self._embed_elsewhere) for side in (left, right)]
        return _rowwise_cosine(*vectors)

    async def _embed_elsewhere(self, texts: list[str]) -> np.ndarray:
        backend = self.embedder.backend
        aembed = getattr(backend, "aembed", None)
        if aembed is not None:
            return await aembed(texts)
        if self._worker is None:  # only ever called on the one loop thread: no race
            self._worker = ThreadPoolExecutor(1, thread_name_prefix="synth-embed")
        return await asyncio.get_running_loop().run_in_executor(self._worker, backend.embed, texts)

    def close(self) -> None:
        """Stop the model's thread (cosines still queued there never start: a stage that failed does not wait for
        them) and the embedder's connections (an API call in flight is cancelled)."""
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.shutdown(cancel_futures=True)
        self.embedder.close()


def _rowwise_cosine(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Cosine of left[i] with right[i] (unit vectors: their dot product)."""
    return np.einsum("ij,ij->i", left, right)


def embedder_configured(options: dict[str, Any]) -> bool:
    return bool(options.get("embedder"))


def embed_config(options: dict[str, Any]) -> dict[str, Any]:
    """The embedding options that decide a stage's output (for `Stage.config()`)."""
    if not embedder_configured(options):
        return {"embedder": None}
    return {k: options.get(k) for k in ("embedder", "embed_model", "query_format")}
