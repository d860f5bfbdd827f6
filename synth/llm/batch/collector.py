"""The engine's batch hook: requests the journal cannot answer are collected for a batch instead of sent."""

from __future__ import annotations

import json
from typing import Any

from synth.llm.batch.store import BatchStore
from synth.llm.engine import ChatResult, JsonResult

WAITING = "waiting for a batch answer"
"""The error of a request that went into a batch: its record is unfinished until the batch answers."""
INVALID = "the batch answer does not fit the requested schema"


class Collector:
    """Given to every engine made while a stage runs in batch mode (`synth.llm.engine.BATCH_COLLECTOR`)."""

    def __init__(self, store: BatchStore):
        self.store = store
        self.requests: dict[str, tuple[str, str]] = {}

    def chat(self, key: str, body: dict[str, Any]) -> ChatResult:
        """The engine did not find a valid answer in the journal: say why the batch could not help, or collect."""
        content = self.store.answered(key)
        if content is not None:  # journaled, but the stage's schema refuses it: a rejected output, as online
            return ChatResult(False, content, error=INVALID)
        failure = self.store.failure(key)
        if failure is not None:
            error, content, finish_reason = failure
            return ChatResult(False, content, error=error, finish_reason=finish_reason)
        self._collect(key, "/chat/completions", body)
        return ChatResult(False, error=WAITING)

    def post(self, key: str, path: str, body: dict[str, Any]) -> JsonResult:
        """A raw JSON POST (embeddings) not in the journal: a failure that is final, or collected."""
        failure = self.store.failure(key)
        if failure is not None:
            return JsonResult(False, error=failure[0])
        self._collect(key, path, body)
        return JsonResult(False, error=WAITING)

    def _collect(self, key: str, path: str, body: dict[str, Any]) -> None:
        self.requests[key] = (path, json.dumps(body, ensure_ascii=False, sort_keys=True))

    def flush(self) -> int:
        """Journal what this run asked for (and forget what it no longer asks); returns how many."""
        self.store.collect(self.requests)
        return len(self.requests)
