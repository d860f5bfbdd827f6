"""Which executor runs the stages of this process, and the `[executor]` table of a pipeline file that chooses it.

Stages ask `executor_for(workers)`; a run on a cluster (`synth run --executor ray`) installs another factory for
its duration. Where parts run never changes what they are, so the choice is not part of any config hash.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from synth.errors import ConfigError
from synth.executor.base import Executor
from synth.executor.local import LocalExecutor

ExecutorFactory = Callable[[int], Executor]
"""Builds the executor of one stage from the local worker processes it asks for (a cluster executor ignores it)."""
KINDS = ("local", "ray")
NEEDS_RAY = "needs Ray: pip install 'synth[ray]'"


@dataclass(frozen=True)
class ExecutorSettings:
    """The `[executor]` table: where parts run. Only `kind = "ray"` reads the other keys."""

    kind: str = "local"
    address: str | None = None
    """A Ray cluster to join ("auto", "ray://head:10001"); none starts a Ray instance on this machine."""
    max_in_flight: int | None = None
    """Parts submitted and not yet finished; default twice the cluster's CPUs."""
    model_actors: int | None = None
    """Actors that keep a stage's model loaded (the embedder); default one per GPU, else 2."""
    snapshot_seconds: float = 10.0
    """How often a part's node-local journal is copied to the run directory (what a retried part seeds from)."""

    @classmethod
    def from_table(cls, table: Any, where: str) -> ExecutorSettings:
        """Checked settings from a pipeline file's `[executor]` table; a mistake is a one-line ConfigError."""
        if not isinstance(table, dict):
            raise ConfigError(f"[executor] in {where} must be a table")
        known = cls.__dataclass_fields__
        unknown = sorted(set(table) - set(known))
        if unknown:
            raise ConfigError(f"unknown key {unknown[0]!r} in [executor] of {where} (known: {', '.join(known)})")
        settings = cls(**table)
        settings.check(where)
        return settings

    def given(self, kind: str | None, address: str | None, where: str) -> ExecutorSettings:
        """These settings with what the command line gave (an address alone implies Ray)."""
        if kind is None and address is None:
            return self
        settings = replace(self, kind=kind or "ray", address=address if address is not None else self.address)
        settings.check(where)
        return settings

    def check(self, where: str) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"executor kind {self.kind!r} in {where} is not one of {', '.join(KINDS)}")
        if self.kind == "ray" and importlib.util.find_spec("ray") is None:
            raise ConfigError(f"executor kind 'ray' in {where} {NEEDS_RAY}")
        for name in ("max_in_flight", "model_actors"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"executor {name} in {where} must be a whole number of at least 1, not {value!r}")
        if not isinstance(self.snapshot_seconds, int | float) or self.snapshot_seconds <= 0:
            raise ConfigError(f"executor snapshot_seconds in {where} must be a positive number of seconds")

    def factory(self) -> ExecutorFactory:
        if self.kind == "local":
            return LocalExecutor
        from synth.executor.ray import RayExecutor  # the optional extra, imported only when asked for

        return lambda workers: RayExecutor(self)


_factory: ExecutorFactory = LocalExecutor


def executor_for(workers: int = 1) -> Executor:
    """The executor for a stage that would use `workers` local processes."""
    return _factory(workers)


@contextlib.contextmanager
def using_executor(settings: ExecutorSettings) -> Iterator[None]:
    """Run the stages started inside on the executor `settings` names."""
    global _factory
    previous, _factory = _factory, settings.factory()
    try:
        yield
    finally:
        _factory = previous
