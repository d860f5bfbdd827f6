"""Retry policy (tenacity): jittered exponential backoff for transient faults only, bounded attempts.

A 429 waits little here because the rate limiter already pauses the whole engine for the server's `Retry-After`.
The first attempt runs without tenacity: its bookkeeping cost (~0.1 ms) matters at thousands of requests per second.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from synth.llm.transport import TransientError

T = TypeVar("T")
BACKOFF_BASE = 0.5
BACKOFF_MAX = 30.0


def backoff_seconds(failed_attempts: int, error: BaseException | None) -> float:
    """Wait after `failed_attempts` failures: full-jitter exponential, short after a 429 (the engine is paused)."""
    if isinstance(error, TransientError) and error.status == 429:
        return random.uniform(0.0, 0.05)
    return random.uniform(0.0, min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (failed_attempts - 1)))


async def retry_after_failure(
    send: Callable[[], Awaitable[T]],
    first_error: TransientError,
    max_attempts: int,
    on_retry: Callable[[TransientError], None],
) -> T:
    """Called once `send` failed with `first_error`: run it again until it succeeds or `max_attempts` are used."""
    if max_attempts <= 1:
        raise first_error
    on_retry(first_error)
    await asyncio.sleep(backoff_seconds(1, first_error))

    def wait(state: RetryCallState) -> float:
        return backoff_seconds(state.attempt_number + 1, state.outcome.exception() if state.outcome else None)

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, TransientError):
            on_retry(error)

    retrying = AsyncRetrying(
        stop=stop_after_attempt(max_attempts - 1),
        wait=wait,
        retry=retry_if_exception_type(TransientError),
        before_sleep=before_sleep,
        reraise=True,
    )
    return await retrying(send)


async def with_retries(
    send: Callable[[], Awaitable[T]], max_attempts: int, on_retry: Callable[[TransientError], None]
) -> T:
    """Run `send` until it succeeds, a non-transient error escapes, or `max_attempts` are used (last error raised)."""
    try:
        return await send()
    except TransientError as error:
        return await retry_after_failure(send, error, max_attempts, on_retry)
