"""Background upkeep while a block runs: a lease renewed, a journal shipped as a snapshot."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def every(seconds: float, action: Callable[[], bool], name: str) -> Iterator[None]:
    """Call `action` every `seconds` on a daemon thread while the block runs, until it returns False; the thread is
    stopped and joined before the block's own cleanup runs, so that cleanup never races a last call."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(seconds):
            if not action():
                return

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
