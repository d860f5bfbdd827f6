"""Progress bars that nest: a bar started inside another (LLM requests inside a stage's parts) joins its display.

rich allows one live display per console, so the outer bar registers itself with `shared_progress` and inner bars
add a task to it instead of starting their own.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

console = Console(stderr=True)
_active: list[Progress] = []
_REFRESH_SECONDS = 0.25


@contextmanager
def shared_progress(progress: Progress) -> Iterator[Progress]:
    """Let bars started while `progress` is live join it."""
    _active.append(progress)
    try:
        yield progress
    finally:
        _active.remove(progress)


def _format_rate(done: int, seconds: float, unit: str) -> str:
    return f"{done / seconds:,.1f} {unit}/s" if seconds > 0 else f"- {unit}/s"


class RequestProgress:
    """A bar over requests with rate, ETA, tokens and cost; silent when disabled, empty, or not on a terminal."""

    def __init__(self, name: str, unit: str, total: int, enabled: bool = True):
        self.name, self.unit, self.total = name, unit, total
        self.enabled = enabled and total > 0 and (bool(_active) or console.is_terminal)
        self._progress: Progress | None = None
        self._own = False
        self._task: TaskID | None = None
        self._done = 0
        self._started = time.monotonic()
        self._last_refresh = 0.0

    def __enter__(self) -> RequestProgress:
        if not self.enabled:
            return self
        if _active:
            self._progress = _active[-1]
        else:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeRemainingColumn(), console=console, transient=True,
            )
            self._progress.start()
            self._own = True
        self._task = self._progress.add_task(self.name, total=self.total)
        return self

    def advance(self, counters: Mapping[str, int | float] | object) -> None:
        """One more request finished; the description (rate, ETA, tokens, cost) is refreshed a few times a second."""
        self._done += 1
        if self._progress is None or self._task is None:
            return
        now = time.monotonic()
        if now - self._last_refresh < _REFRESH_SECONDS and self._done < self.total:
            return
        self._last_refresh = now
        elapsed = now - self._started
        rate = self._done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self._done) / rate if rate > 0 else 0.0
        stats = counters if isinstance(counters, Mapping) else getattr(counters, "__dict__", {})
        tokens = int(stats.get("prompt_tokens", 0)) + int(stats.get("completion_tokens", 0))
        text = f"{self.name} {_format_rate(self._done, elapsed, self.unit)} ETA {eta:,.0f}s {tokens:,} tok"
        if stats.get("cost_usd"):
            text += f" ${stats['cost_usd']:.4f}"
        if stats.get("failures"):
            text += f" [red]{stats['failures']} failed"
        self._progress.update(self._task, completed=self._done, description=text)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._progress is None or self._task is None:
            return
        if self._own:
            self._progress.stop()
        else:
            self._progress.remove_task(self._task)
