"""One rate budget for a whole Ray cluster: a named actor per budget key holds the RPM/TPM pacers and the pause
after a 429, and every worker's engine leases request slots from it in chunks.

A worker installs `install(registry)`: from then on `synth.llm.ratelimit.make_limiter` returns a `ClusterLimiter`
for every engine with a budget. The actor books a chunk of evenly spaced slots at once (one round trip per chunk,
not per request), so N workers together keep to the provider's limit; tokens a worker spent are settled with its
next lease. The actors live on the driver's node and end with the run.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from typing import Any

from synth.errors import ConfigError
from synth.executor.choice import NEEDS_RAY
from synth.llm.ratelimit import PACE_SHARE, Pacer, RateLimiter, set_limiter_factory

try:  # the optional `ray` extra
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
except ImportError as exc:
    raise ConfigError(f"the cluster's rate budget {NEEDS_RAY}") from exc

LEASE_SECONDS = 0.25
"""A lease covers about this much of the budget (at least one request): long enough that the actor answers a few
leases a second per worker, short enough that slots left unused when a part ends cost little."""
NAMESPACE = "synth"


class BudgetActor:
    """The budget of one key for the cluster: the same pacers as a local `RateLimiter`, asked by every worker."""

    def __init__(self, rpm: float | None, tpm: float | None):
        self.requests = Pacer(rpm)
        self.tokens = Pacer(tpm, burst_seconds=1.0)
        self.paused_until = 0.0
        self.leased = 0

    def lease(self, count: int, tokens: float) -> tuple[float, float, float]:
        """Book `count` request slots and charge `tokens`; returns (seconds until the first slot, seconds between
        slots, seconds of pause left)."""
        self.leased += count
        self.tokens.adjust(tokens)  # spent since this worker's last lease: later slots wait for it
        delay = max(self.requests.reserve(count), self.tokens.reserve(0.0))
        spacing = 60.0 / (self.requests.per_minute * PACE_SHARE) if self.requests.per_minute else 0.0
        return delay, spacing, max(0.0, self.paused_until - time.monotonic())

    def pause(self, seconds: float) -> None:
        self.paused_until = max(self.paused_until, time.monotonic() + seconds)

    def set_rate(self, kind: str, per_minute: float) -> None:
        """A lower limit one worker learned from the server's headers, for every worker."""
        pacer = self.requests if kind == "requests" else self.tokens
        if not pacer.per_minute or per_minute < pacer.per_minute:
            pacer.set_rate(per_minute)

    def count(self) -> int:
        """Request slots leased so far (for tests and the benchmark)."""
        return self.leased


class BudgetRegistry:
    """Creates the one budget actor of each key on first request, beside the driver, and owns it for the run."""

    def __init__(self, node_id: str):
        self.node_id = node_id
        self.budgets: dict[str, Any] = {}

    def budget(self, key: str, rpm: float | None, tpm: float | None) -> Any:
        if key not in self.budgets:
            self.budgets[key] = ray.remote(BudgetActor).options(
                name=f"synth-budget:{key}", namespace=NAMESPACE, num_cpus=0, max_concurrency=1,
                scheduling_strategy=NodeAffinitySchedulingStrategy(self.node_id, soft=False),
            ).remote(rpm, tpm)
        return self.budgets[key]


_registries: dict[str, Any] = {}
"""The registry of this driver's Ray job, held for the life of the process: an actor whose last handle goes away
ends, and with it the budgets (one stage's budget must outlive it for the next stage)."""


def start_registry() -> Any:
    """The run's registry of budgets, on this (the driver's) node, made once per Ray job."""
    context = ray.get_runtime_context()
    job = context.get_job_id()
    if job not in _registries:
        node_id = context.get_node_id()
        _registries[job] = ray.remote(BudgetRegistry).options(
            name=f"synth-budgets:{job}", namespace=NAMESPACE, num_cpus=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
        ).remote(node_id)
    return _registries[job]


class _Tab(Pacer):
    """This worker's view of one of the actor's pacers: its rate, and the tokens spent since the last lease."""

    def __init__(self, per_minute: float | None, actor: Any, kind: str):
        super().__init__(per_minute)
        self.actor, self.kind = actor, kind
        self.owed = 0.0

    def set_rate(self, per_minute: float | None) -> None:
        super().set_rate(per_minute)
        if per_minute:
            self.actor.set_rate.remote(self.kind, per_minute)

    def adjust(self, cost_delta: float) -> None:
        self.owed += cost_delta


class ClusterLimiter(RateLimiter):
    """A `RateLimiter` whose budget and pause live in the cluster's budget actor; slots are leased in chunks."""

    def __init__(self, actor: Any, rpm: float | None, tpm: float | None):
        super().__init__(rpm, tpm)
        self.actor = actor
        self.requests = _Tab(rpm, actor, "requests")
        self.tokens = _Tab(tpm, actor, "tokens")
        self.chunk = max(1, math.floor((rpm or 60.0) / 60.0 * LEASE_SECONDS))
        self._slots: deque[float] = deque()
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def acquire(self, tokens: int) -> None:
        self.tokens.owed += tokens
        async with self._lock_of_this_loop():
            if not self._slots:
                await self._lease()
            slot = self._slots.popleft()
        if (delay := slot - time.monotonic()) > 0:
            await asyncio.sleep(delay)
        while (pause := self._paused_until - time.monotonic()) > 0:
            await asyncio.sleep(pause)

    def pause(self, seconds: float) -> None:
        super().pause(seconds)
        self.actor.pause.remote(seconds)

    async def _lease(self) -> None:
        owed, self.tokens.owed = self.tokens.owed, 0.0
        delay, spacing, pause = await asyncio.wrap_future(self.actor.lease.remote(self.chunk, owed).future())
        now = time.monotonic()
        self._slots.extend(now + delay + index * spacing for index in range(self.chunk))
        if pause > 0:
            super().pause(pause)

    def _lock_of_this_loop(self) -> asyncio.Lock:
        """One lease at a time; the engine may run a new event loop per batch, and a lock belongs to one loop."""
        loop = asyncio.get_running_loop()
        if self._lock is None or self._loop is not loop:
            self._lock, self._loop = asyncio.Lock(), loop
        return self._lock


def install(registry: Any) -> None:
    """Make every engine of this worker process take its budget (when it has one) from the cluster's actors."""
    actors: dict[str, Any] = {}

    def factory(rpm: float | None, tpm: float | None, key: str) -> RateLimiter:
        if not (rpm or tpm):
            return RateLimiter(rpm, tpm)  # no budget to share: pauses after a 429 stay with this worker
        if key not in actors:
            actors[key] = ray.get(registry.budget.remote(key, rpm, tpm))
        return ClusterLimiter(actors[key], rpm, tpm)

    set_limiter_factory(factory)
