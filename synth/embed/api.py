"""OpenAI-compatible `/v1/embeddings` backend (TEI, vLLM, Infinity, OpenAI) on the shared LLM engine."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from synth.embed.base import normalize
from synth.errors import StageFailed, SynthError
from synth.llm.engine import JsonResult, LLMEngine, counting
from synth.llm.settings import LLMSettings, redact_url

API_KEYS = ("api_key", "concurrency", "rpm", "tpm", "timeout", "max_attempts", "max_cost", "prices")
"""LLM engine options the API embedder reads besides `embed_base_url` (limits, retries, key)."""


def vectors_from_answer(data: Any, expected: int) -> np.ndarray:
    """The vectors of one `/embeddings` answer in input order (`data[i].index`), checked for count and shape."""
    try:
        items = sorted(data["data"], key=lambda item: item["index"])
        vectors = np.array([item["embedding"] for item in items], dtype=np.float32)
    except (KeyError, TypeError, ValueError) as exc:
        raise SynthError(f"malformed /embeddings answer: {exc!r}") from exc
    if vectors.ndim != 2 or len(vectors) != expected:
        raise SynthError(f"/embeddings answered {len(vectors)} vectors for {expected} inputs")
    return vectors


class APIEmbedder:
    """Batches of texts POSTed as `{"model", "input": [...]}`; answers are cached by the caller, not journaled."""

    def __init__(self, engine: LLMEngine, model: str, batch_size: int = 64):
        self.engine = engine
        self.model = model
        self.batch_size = batch_size
        # Same model name on two servers may be two vector spaces: the endpoint is part of the id.
        self.model_id = f"{model}@{redact_url(engine.settings.base_url)}"

    @classmethod
    def from_options(cls, model: str, options: dict[str, Any]) -> APIEmbedder:
        """An engine on `embed_base_url` (else $OPENAI_BASE_URL) with the stage's key, limits and retries."""
        engine_options = {k: options[k] for k in API_KEYS if options.get(k) is not None}
        engine_options.update(model=model, base_url=options.get("embed_base_url"))
        return cls.on(LLMSettings.from_options(engine_options), model, int(options.get("embed_batch_size") or 64))

    @classmethod
    def on(cls, settings: LLMSettings, model: str, batch_size: int) -> APIEmbedder:
        return cls(LLMEngine(settings, journal=None, stage="embed", progress=False), model, batch_size)

    def __reduce__(self) -> tuple[Any, ...]:
        """Another process (a cluster's worker) gets its own engine on the same settings: connections stay here."""
        return APIEmbedder.on, (self.engine.settings, self.model, self.batch_size)

    def endpoint_usage(self) -> dict[str, Any]:
        """Per-endpoint requests, failures, latency and cost of this process's engine, for the stage's manifest."""
        return self.engine.endpoint_usage()

    def close(self) -> None:
        """Close the engine's HTTP sessions and loop (a later `embed` opens new ones), so none is left to the
        garbage collector's warnings at exit."""
        self.engine.close()

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit vectors of `texts`; a batch that still fails after the engine's retries stops the stage (exit 1)."""
        batches = self.batches(texts)
        # Counted apart from the part being made: its `llm_*` stats are its chat model's (an estimate reads them as
        # tries per record); the embedder's requests and cost are its endpoint's, in the manifest's `endpoints`.
        with counting():
            results = self.engine.post_json_many("/embeddings", self.bodies(batches), journal=False)
        return self.vectors(results, batches)

    async def aembed(self, texts: list[str]) -> np.ndarray:
        """`embed` for a coroutine on another event loop (a stage's checks): sent on this engine's loop thread and
        awaited there, so that loop serves its own requests meanwhile, and several calls are in flight at once."""
        batches = self.batches(texts)
        with counting():  # counted apart, as in `embed`
            sent = self.engine.submit(self.engine.apost_json_many("/embeddings", self.bodies(batches), journal=False))
        return self.vectors(await asyncio.wrap_future(sent), batches)

    def batches(self, texts: list[str]) -> list[list[str]]:
        return [texts[i : i + self.batch_size] for i in range(0, len(texts), self.batch_size)]

    def bodies(self, batches: list[list[str]]) -> list[dict[str, Any]]:
        return [{"model": self.model, "input": batch} for batch in batches]

    @staticmethod
    def vectors(results: list[JsonResult], batches: list[list[str]]) -> np.ndarray:
        """The answers' vectors in order; a batch that still failed after the engine's retries stops the stage."""
        failed = [r.error for r in results if not r.ok]
        if failed:
            raise StageFailed(f"{len(failed)} embedding request(s) failed ({failed[0]}); rerun to resume")
        return normalize(np.concatenate([vectors_from_answer(r.data, len(b)) for r, b in zip(results, batches,
                                                                                           strict=True)]))
