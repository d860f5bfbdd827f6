"""Retry policy (tenacity): jittered exponential backoff for transient faults only, bounded attempts.

A 429 waits little here because the rate limiter already pauses the whole engine for the server's `Retry-After`.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_random_exponential

from synth.llm.transport import TransientError

T = TypeVar("T")
_backoff = wait_random_exponential(multiplier=0.5, max=30.0)


def backoff_seconds(state: RetryCallState) -> float:
    """How long to wait before the next attempt: jittered exponential, short after a 429."""
    error = state.outcome.exception() if state.outcome else None
    if isinstance(error, TransientError) and error.status == 429:
        return random.uniform(0.0, 0.05)
    return _backoff(state)


async def with_retries(
    send: Callable[[], Awaitable[T]], max_attempts: int, on_retry: Callable[[TransientError], None]
) -> T:
    """Run `send` until it succeeds, a non-transient error escapes, or `max_attempts` are used (last error raised)."""

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, TransientError):
            on_retry(error)

    retrying = AsyncRetrying(
        stop=stop_after_attempt(max_attempts),
        wait=backoff_seconds,
        retry=retry_if_exception_type(TransientError),
        before_sleep=before_sleep,
        reraise=True,
    )
    return await retrying(send)
