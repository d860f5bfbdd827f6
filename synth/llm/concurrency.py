"""How many requests an engine keeps in flight: one engine-wide limit that adapts to the server (AIMD).

Every request of every part, job and retry takes a slot here, so there is no per-call pool and no round barrier.
The limit starts low and grows fourfold per round trip (start-up ramp) up to `--concurrency`; a 429 or an overload
(503, reset) halves it once per burst (a failure of a request sent before the last cut does not cut again), and
each success after a cut adds one slot per limit's worth of successes. It never goes above `--concurrency`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

START = 16
"""Slots at start-up: enough to fill a small server at once, few enough not to flood one that is already busy."""
RAMP_GROWTH = 3.0
"""Slots each answer adds during the start-up ramp: fourfold per round trip (16, 64, 256), so full concurrency comes
after two round trips, not four as with doubling. An LLM's round trip is seconds long: each one the ramp takes is
seconds of a run at a fraction of its concurrency. The first cut ends the ramp, whatever it overshot."""
FLOOR = 1


class AdaptiveLimit:
    """Slots for requests in flight; `acquire` returns when one is free, `release` gives it back with the outcome."""

    def __init__(self, ceiling: int, start: int = START):
        self.ceiling = max(1, int(ceiling))
        self.limit = float(min(self.ceiling, max(FLOOR, start)))
        self.ramp_until = float(self.ceiling)  # below this the limit grows by RAMP_GROWTH per success
        self.in_flight = 0
        self.cuts = 0
        self._last_cut = 0.0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._urgent: deque[asyncio.Future[None]] = deque()

    async def acquire(self, urgent: bool = False) -> float:
        """Wait for a slot; returns the time it was granted (pass it to `overloaded`). `urgent` waiters (a record's
        next try) go first: finishing started records shortens a part's tail, and its rows are written sooner."""
        if self.in_flight < int(self.limit) and not self._waiters and not self._urgent:
            self.in_flight += 1
            return time.monotonic()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._urgent if urgent else self._waiters
        queue.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # granted and cancelled in the same iteration: hand the slot on
            else:
                queue.remove(waiter)
            raise
        return time.monotonic()

    def release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def succeeded(self) -> None:
        """One request answered: ramp up (`RAMP_GROWTH` slots per success) or grow slowly (one per limit's worth)."""
        if self.limit >= self.ceiling:
            return
        growth = RAMP_GROWTH if self.limit < self.ramp_until else 1.0 / self.limit
        self.limit = min(float(self.ceiling), self.limit + growth)
        self._wake()

    def overloaded(self, granted_at: float) -> None:
        """The server said it is overloaded (429, 503, reset): halve the limit, once per burst."""
        if granted_at < self._last_cut:
            return  # sent before the last cut: part of the burst already answered by it
        self._last_cut = time.monotonic()
        self.limit = max(float(FLOOR), self.limit / 2)
        self.ramp_until = self.limit
        self.cuts += 1

    def _wake(self) -> None:
        while self.in_flight < int(self.limit) and (self._urgent or self._waiters):
            waiter = (self._urgent or self._waiters).popleft()
            if not waiter.done():
                self.in_flight += 1
                waiter.set_result(None)


async def gather_or_cancel(tasks: list[asyncio.Future[Any]]) -> None:
    """Wait for all tasks; on the first exception cancel the rest and raise it (a fatal error stops at once)."""
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    failed = [t for t in done if t.exception() is not None]
    if failed:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        raise failed[0].exception()  # type: ignore[misc]
