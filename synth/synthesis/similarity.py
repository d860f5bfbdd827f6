"""Embedding cosine between texts, for the checks and the persona choice that can use an embedder."""

from __future__ import annotations

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

    def vectors(self, texts: list[str]) -> np.ndarray:
        return self.embedder.encode_documents(texts)

    def pairwise(self, left: list[str], right: list[str]) -> np.ndarray:
        """Cosine of left[i] with right[i]."""
        if not left:
            return np.empty(0, dtype=np.float32)
        return np.einsum("ij,ij->i", self.vectors(left), self.vectors(right))


def embedder_configured(options: dict[str, Any]) -> bool:
    return bool(options.get("embedder"))


def embed_config(options: dict[str, Any]) -> dict[str, Any]:
    """The embedding options that decide a stage's output (for `Stage.config()`)."""
    if not embedder_configured(options):
        return {"embedder": None}
    return {k: options.get(k) for k in ("embedder", "embed_model", "query_format")}
