"""`--estimate` of an API embedder: the requests, texts, tokens and cost it would be sent, counted instead of sent.

A stage that embeds through `CachedEmbedder.encode` is estimated by handing it a `CountingEmbedder` in place of its
own: each `encode` call of the run is counted as the cache would send it (its distinct texts that neither the
embedding cache nor an earlier call holds, in requests of `embed_batch_size` texts per flush chunk), and answered
with zero vectors, so nothing is sent, computed or written.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from synth.embed.cache import text_keys
from synth.embed.cached import CachedEmbedder
from synth.llm.estimate import cost_and_time
from synth.llm.settings import LLMSettings

EMBED_STATS = {"estimate_requests": "estimate_embed_requests", "estimate_prompt_tokens": "estimate_embed_tokens",
               "estimate_cost_usd": "estimate_embed_cost_usd",
               "estimate_minutes_at_limits": "estimate_embed_minutes_at_limits"}
"""`cost_and_time`'s names for what the embedder sends, as a stage that also asks a chat model shows them."""


def uncached(texts: Iterable[str], embedder: CachedEmbedder) -> list[str]:
    """The distinct texts the cache does not hold: what a run would send."""
    distinct = list(dict.fromkeys(texts))
    if embedder.cache is None or not distinct:
        return distinct
    found = embedder.cache.find(text_keys(distinct))
    return [text for text, position in zip(distinct, found.tolist(), strict=True) if position < 0]


def online_settings(embedder: CachedEmbedder) -> LLMSettings:
    """The API backend's engine settings (prices, limits), online: embeddings never go through a batch."""
    return dataclasses.replace(embedder.backend.engine.settings, mode="online")


@dataclass(frozen=True)
class EmbedCount:
    """Texts an embedder would be sent, their tokens and the requests that carry them."""

    texts: float = 0
    tokens: float = 0
    requests: float = 0

    def __add__(self, other: EmbedCount) -> EmbedCount:
        return EmbedCount(self.texts + other.texts, self.tokens + other.tokens, self.requests + other.requests)

    def __sub__(self, other: EmbedCount) -> EmbedCount:
        return self + other.times(-1)

    def times(self, factor: float) -> EmbedCount:
        return EmbedCount(self.texts * factor, self.tokens * factor, self.requests * factor)


class CountingEmbedder(CachedEmbedder):
    """Stands in for a stage's embedder under `--estimate`: the same cache (read only) and query format, and every
    `encode` counted in `sent` instead of embedded; its vectors are zeros, so every similarity is a tie."""

    def __init__(self, embedder: CachedEmbedder, count: Callable[[str], int]):
        super().__init__(embedder.backend, embedder.cache, embedder.query_format, embedder.flush_texts)
        self.batch_size = int(embedder.backend.batch_size)
        self.count = count
        self.sent = EmbedCount()
        self._counted: set[str] = set()

    def encode(self, texts: list[str]) -> np.ndarray:
        """Count one `encode` call: the texts neither the cache nor an earlier call holds, in the requests that
        `CachedEmbedder.encode` would split them into."""
        missing = [text for text in uncached(texts, self) if text not in self._counted]
        self._counted.update(missing)
        full, rest = divmod(len(missing), self.flush_texts)
        requests = full * math.ceil(self.flush_texts / self.batch_size) + math.ceil(rest / self.batch_size)
        self.sent += EmbedCount(len(missing), sum(self.count(t) for t in missing), requests)
        return np.zeros((len(texts), 1), dtype=np.float32)

    def encode_new(self, texts: list[str]) -> None:
        """Count texts a run writes and then embeds one per call (outputs checked one by one): each is new, so
        neither the cache nor an earlier call holds it, and each is a request of its own."""
        self.sent += EmbedCount(len(texts), sum(self.count(t) for t in texts), len(texts))


def embed_stats(sent: EmbedCount, embedder: CachedEmbedder) -> dict[str, Any]:
    """`sent` as the estimate's `estimate_embed_*` stats: with a `prices` entry for the embedding model its cost
    (input tokens only), with `rpm` / `tpm` the minutes at those limits."""
    stats = cost_and_time(sent.requests, sent.tokens, 0, online_settings(embedder))
    return {"estimate_embed_texts": round(sent.texts),
            **{EMBED_STATS[key]: value for key, value in stats.items() if key in EMBED_STATS}}


def with_embedding(stats: dict[str, Any], embedding: dict[str, Any]) -> dict[str, Any]:
    """A stage's estimate with its embedder's stats. One cost figure is the whole bill: the embedder's cost is part
    of `estimate_cost_usd` and, where the chat model has a batch price, of `estimate_batch_cost_usd` (embeddings
    are sent online in every mode); a model without a price adds nothing, as in a run's cost."""
    merged = {**stats, **embedding}
    cost = embedding.get("estimate_embed_cost_usd")
    if cost:
        merged["estimate_cost_usd"] = stats.get("estimate_cost_usd", 0.0) + cost
        if "estimate_batch_cost_usd" in stats:
            merged["estimate_batch_cost_usd"] = stats["estimate_batch_cost_usd"] + cost
    return merged
