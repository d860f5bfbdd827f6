"""Client-side request and token budgets, and the engine-wide pause the server asks for with 429 and its headers."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Mapping

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
PACE_SHARE = 0.98
"""Share of a budget actually paced: 2% of slack absorbs network jitter, which would otherwise push a server's
sliding window one request over now and then (bench/bench_llm.py: 9 429s in 2,000 requests at 100%, none at 98%)."""


class Pacer:
    """Spreads a per-minute budget evenly over time (GCRA), so a sliding-window server limit is never overrun.

    `reserve(cost)` books the next slot and returns how long to wait; it needs no lock because the event loop
    runs one coroutine at a time between awaits.
    """

    def __init__(self, per_minute: float | None, burst_seconds: float = 0.0):
        self.per_minute = per_minute
        self.burst = burst_seconds
        self._tat = time.monotonic()  # theoretical arrival time of the next unit

    def set_rate(self, per_minute: float | None) -> None:
        self.per_minute = per_minute

    def reserve(self, cost: float = 1.0) -> float:
        if not self.per_minute:
            return 0.0
        now = time.monotonic()
        start = max(now, self._tat - self.burst)
        self._tat = max(self._tat, start) + cost * 60.0 / (self.per_minute * PACE_SHARE)
        return start - now

    def adjust(self, cost_delta: float) -> None:
        """Charge (or refund) units once the real cost is known, for example tokens from `usage`."""
        if self.per_minute:
            self._tat += cost_delta * 60.0 / (self.per_minute * PACE_SHARE)


def parse_duration(value: str | None) -> float | None:
    """Seconds from `Retry-After` ("2", "1.5") or `x-ratelimit-reset-*` ("1s", "6m0s", "20ms") values."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    parts = _DURATION.findall(value)
    if not parts:
        return None
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """How long the server asked us to wait, from `retry-after-ms` or `Retry-After` (seconds)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    return parse_duration(headers.get("retry-after"))


class RateLimiter:
    """Requests-per-minute and tokens-per-minute pacing plus an engine-wide pause after 429s.

    Follows the server: a `x-ratelimit-limit-*` lower than the configured budget replaces it, and a 429 or an
    exhausted `x-ratelimit-remaining-*` pauses every request until the server's reset time.
    """

    def __init__(self, rpm: float | None, tpm: float | None):
        self.requests = Pacer(rpm)
        self.tokens = Pacer(tpm, burst_seconds=1.0)
        self._paused_until = 0.0

    async def acquire(self, tokens: int) -> None:
        """Wait for a request slot and `tokens` of token budget, and for any pause the server asked for."""
        delay = max(self.requests.reserve(1.0), self.tokens.reserve(tokens))
        if delay > 0:
            await asyncio.sleep(delay)
        while (pause := self._paused_until - time.monotonic()) > 0:
            await asyncio.sleep(pause)

    def limiting(self) -> bool:
        """Whether a budget or a pause applies at all (when not, sending needs no await here)."""
        return bool(self.requests.per_minute or self.tokens.per_minute) or self._paused_until > time.monotonic()

    def pause(self, seconds: float) -> None:
        """Hold every request of the engine for `seconds` (longer pauses win)."""
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    def on_429(self, headers: Mapping[str, str], fallback_seconds: float) -> float:
        """Slow the whole engine after a 429; returns the pause applied."""
        seconds = retry_after(headers)
        if seconds is None:
            seconds = parse_duration(headers.get("x-ratelimit-reset-requests")) or fallback_seconds
        self.pause(seconds)
        self.follow(headers)
        return seconds

    def follow(self, headers: Mapping[str, str]) -> None:
        """Adopt the server's advertised limits when lower, and pause when a budget is exhausted."""
        for pacer, kind in ((self.requests, "requests"), (self.tokens, "tokens")):
            limit = headers.get(f"x-ratelimit-limit-{kind}")
            if limit and limit.isdigit() and int(limit) > 0 and (not pacer.per_minute or int(limit) < pacer.per_minute):
                pacer.set_rate(float(limit))
            if headers.get(f"x-ratelimit-remaining-{kind}") == "0":
                reset = parse_duration(headers.get(f"x-ratelimit-reset-{kind}"))
                if reset:
                    self.pause(reset)


LimiterFactory = Callable[[float | None, float | None, str], RateLimiter]
"""Builds the limiter of one endpoint from (rpm, tpm, budget key); the key names whose budget it is (endpoint and
model, never a secret), so that limiters of one key may share a budget (for example across a cluster's workers)."""


def _local_limiter(rpm: float | None, tpm: float | None, key: str) -> RateLimiter:
    return RateLimiter(rpm, tpm)


_factory: LimiterFactory = _local_limiter


def make_limiter(rpm: float | None, tpm: float | None, key: str) -> RateLimiter:
    """The limiter an engine uses for the budget named `key`: the one seam where a shared budget plugs in."""
    return _factory(rpm, tpm, key)


def set_limiter_factory(factory: LimiterFactory | None) -> None:
    """Install how limiters are built in this process (None restores the local one)."""
    global _factory
    _factory = factory or _local_limiter
