"""The provider's Files and Batches APIs through the `openai` SDK (the reference client; off the hot path)."""

from __future__ import annotations

from typing import Any

from synth.errors import ConfigError, FatalAPIError
from synth.llm.batch.files import API_PREFIX
from synth.llm.settings import LLMSettings, redact_url

COMPLETION_WINDOW = "24h"
JOB_TAG = "synth_job"
"""Batch metadata naming our job id: a run killed between submitting and journaling finds its batch by it."""


class BatchClient:
    """Upload, submit, poll, download and cancel; an API refusal or an unreachable endpoint is a one-line error."""

    def __init__(self, settings: LLMSettings):
        try:
            from openai import OpenAI
        except ImportError:
            raise ConfigError("--llm-mode batch needs the openai package: pip install 'synth[batch]'") from None
        if not settings.base_url:
            raise ConfigError("--llm-mode batch needs an endpoint with the Batch API: pass --base-url and "
                              "--api-key (or set OPENAI_BASE_URL and OPENAI_API_KEY)")
        self.where = redact_url(settings.base_url)
        self.client = OpenAI(base_url=settings.base_url, api_key=settings.api_key or "none",
                             timeout=settings.timeout, max_retries=settings.max_attempts,
                             default_headers=settings.extra_headers or None)

    def _call(self, what: str, call: Any, *args: Any, **kwargs: Any) -> Any:
        import openai

        try:
            return call(*args, **kwargs)
        except openai.APIStatusError as exc:
            raise FatalAPIError(f"{self.where} refused to {what}: {exc.status_code} {exc.message}") from None
        except openai.APIError as exc:
            raise FatalAPIError(f"cannot {what} at {self.where}: {exc}; submitted batches are journaled: "
                                "run the command again to resume") from None

    def upload(self, name: str, data: bytes) -> str:
        return self._call("upload a batch file", self.client.files.create, file=(name, data), purpose="batch").id

    def submit(self, file_id: str, url: str, job_id: str) -> Any:
        return self._call("create a batch", self.client.batches.create, input_file_id=file_id,
                          endpoint=API_PREFIX + url, completion_window=COMPLETION_WINDOW,
                          metadata={JOB_TAG: job_id})

    def find(self, job_id: str) -> Any | None:
        """The batch an earlier run submitted for `job_id` (before it could journal the batch id), if any."""
        for batch in self._call("list batches", self.client.batches.list, limit=100):
            if (batch.metadata or {}).get(JOB_TAG) == job_id:
                return batch
        return None

    def retrieve(self, batch_id: str) -> Any:
        return self._call("poll a batch", self.client.batches.retrieve, batch_id)

    def cancel(self, batch_id: str) -> Any:
        return self._call("cancel a batch", self.client.batches.cancel, batch_id)

    def content(self, file_id: str) -> bytes:
        return self._call("download a batch result", self.client.files.content, file_id).content
