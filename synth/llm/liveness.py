"""Endpoints served by a process synth started itself (the demo model): when a request cannot reach one, ask
whether its process died, so the run stops at once with the reason instead of retrying a dead server.
"""

from __future__ import annotations

from collections.abc import Callable

from synth.errors import FatalAPIError

DeathReason = Callable[[], "str | None"]
"""Why the server behind an endpoint is gone (exit code or signal, last log lines), or None while it runs."""

_watched: dict[str, DeathReason] = {}


class EndpointDied(FatalAPIError):
    """The server process synth started for an endpoint exited; nothing can answer until the run is restarted."""


def watch(base_url: str, death_reason: DeathReason) -> None:
    _watched[base_url] = death_reason


def unwatch(base_url: str) -> None:
    _watched.pop(base_url, None)


def raise_if_dead(base_url: str | None) -> None:
    """Raise EndpointDied when `base_url` is served by a watched process that is no longer running."""
    death_reason = _watched.get(base_url or "")
    reason = death_reason() if death_reason else None
    if reason:
        raise EndpointDied(f"{reason}; finished parts and journaled answers are kept: run the command again to resume")
