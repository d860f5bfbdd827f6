"""What stops an engine before it spends for nothing: a run of failures retries cannot cure, and the cost budget.

Both stops are resumable: answers already received are journaled and finished parts are kept, so the same command
(with the cause fixed, or a higher `--max-cost`) goes on where it stopped.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from synth.errors import SynthError

FAILURE_WINDOW = 50
"""Requests looked back on by the error-rate stop."""
FAILURE_SHARE = 0.9
"""Share of those that must have failed for the stop to fire: a model that fails now and then still runs."""
_DRAIN_POLL = 0.02


class EndpointFailing(SynthError):
    """Most recent requests failed in ways a retry will not cure (invalid answers, refusals): stop spending."""

    exit_code = 1


class BudgetReached(SynthError):
    """The next request would take the run's spending past `--max-cost`."""

    exit_code = 1


class FailureWindow:
    """The outcome of the last `size` requests; `record` raises once most of a full window failed."""

    def __init__(self, size: int = FAILURE_WINDOW, share: float = FAILURE_SHARE):
        self.size = size
        self.share = share
        self._recent: deque[bool] = deque(maxlen=size)
        self._failed = 0
        self.tripped: EndpointFailing | None = None

    def check(self) -> None:
        """Raise again once the stop fired: no request is sent after it, from any part."""
        if self.tripped is not None:
            raise self.tripped

    def record(self, ok: bool, reason: str | None = None) -> None:
        if len(self._recent) == self.size:
            self._failed -= not self._recent[0]
        self._recent.append(ok)
        self._failed += not ok
        if len(self._recent) == self.size and self._failed >= self.share * self.size:
            self.tripped = EndpointFailing(
                f"stopped: {self._failed} of the last {self.size} requests failed in ways retries will not cure "
                f"(last: {reason}); answers so far and finished parts are kept: fix the cause and run again")
            raise self.tripped


class Budget:
    """Spending of this run against `max_cost` USD, counting what requests in flight are expected to cost."""

    def __init__(self, max_cost: float, spent: Callable[[], float]):
        self.max_cost = max_cost
        self.spent = spent
        self.in_flight = 0.0
        self.requests = 0

    async def admit(self, expected: float) -> None:
        """Book a request expected to cost `expected` USD. When it does not fit, wait for the requests in flight to
        be answered (and journaled), then raise `BudgetReached` if it still does not fit."""
        while self.spent() + self.in_flight + expected > self.max_cost:
            if self.requests == 0:
                raise BudgetReached(
                    f"stopped before passing --max-cost {self.max_cost:g} USD (spent {self.spent():.4f} USD in this "
                    "run); answers so far and finished parts are kept: run again with a higher --max-cost to go on")
            await asyncio.sleep(_DRAIN_POLL)
        self.in_flight += expected
        self.requests += 1

    def settle(self, expected: float) -> None:
        """The booked request is answered (its real cost is now in `spent`) or failed."""
        self.requests -= 1
        self.in_flight = self.in_flight - expected if self.requests else 0.0  # no float residue left behind
