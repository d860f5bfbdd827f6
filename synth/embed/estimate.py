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


class CountingEmbedder(CachedEmbedder):
    """Stands in for a stage's embedder under `--estimate`: the same cache (read only) and query format, and what
    a run would send counted (`take`) instead of embedded; its vectors are zeros, so every similarity is a tie."""

    def __init__(self, embedder: CachedEmbedder, count: Callable[[str], int]):
        super().__init__(embedder.backend, embedder.cache, embedder.query_format, embedder.flush_texts)
        self.batch_size = int(embedder.backend.batch_size)
        self.count = count
        self._counted: set[str] = set()
        self._calls: list[int] = []
        """Texts sent by each `encode` call since the last `take`: a call over a part's rows grows with them."""
        self._single = 0
        """Texts sent one per request since the last `take`: their requests grow in number with the rows."""
        self._texts = self._tokens = 0

    def encode(self, texts: list[str]) -> np.ndarray:
        """Count one `encode` call of a run: the texts neither the cache nor an earlier call holds."""
        self._calls.append(self._add(self._missing(texts)))
        return np.zeros((len(texts), 1), dtype=np.float32)

    def encode_each(self, texts: list[str], new: bool = False) -> None:
        """Count texts a run embeds in a call of their own each (a record's, an output's): one request per text
        that neither the cache nor an earlier call holds, or per text if they are `new` (outputs a run writes)."""
        self._single += self._add(list(texts) if new else self._missing(texts))

    def take(self, scale: float = 1.0) -> EmbedCount:
        """What the calls since the last `take` send, with as many rows again as `scale` says: the texts and the
        one-text requests `scale` times as many, each `encode` call `scale` times as large, split as
        `CachedEmbedder.encode` splits it (chunks of `flush_texts`, requests of `batch_size` texts). The texts
        stay counted: a later call finds them embedded."""
        calls = sum(self._requests(math.ceil(round(texts * scale, 6))) for texts in self._calls)
        requests = calls + self._single * scale
        taken = EmbedCount(self._texts * scale, self._tokens * scale, requests)
        self._calls, self._single, self._texts, self._tokens = [], 0, 0, 0
        return taken

    def _missing(self, texts: list[str]) -> list[str]:
        missing = [text for text in uncached(texts, self) if text not in self._counted]
        self._counted.update(missing)
        return missing

    def _add(self, texts: list[str]) -> int:
        self._texts += len(texts)
        self._tokens += sum(self.count(t) for t in texts)
        return len(texts)

    def _requests(self, texts: int) -> int:
        full, rest = divmod(texts, self.flush_texts)
        return full * math.ceil(self.flush_texts / self.batch_size) + math.ceil(rest / self.batch_size)


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
