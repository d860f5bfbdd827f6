"""One writer per stage directory: an advisory lock that the kernel releases when its process ends, crash or not."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from synth.errors import SynthError
from synth.store import LOCK


class StageBusy(SynthError):
    """Another synth process is writing the same stage directory (exit 2): nothing was written."""

    exit_code = 2


@contextlib.contextmanager
def stage_lock(directory: Path) -> Iterator[None]:
    """Hold `DIR/_synth.lock` (flock) while writing DIR; a second writer stops at once, naming the holder.

    The lock file is never deleted: unlinking it could let two processes lock two different files of one name."""
    path = Path(directory) / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 256, 0).decode("utf-8", errors="replace").strip() or "pid unknown"
            raise StageBusy(
                f"{directory} is being written by another synth process ({holder}); wait for it to end or stop it"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
