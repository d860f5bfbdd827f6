"""One writer per stage directory: an advisory lock that the kernel releases when its process ends, crash or not;
on an object store, where there is no lock, a lease."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from synth import storage
from synth.errors import SynthError
from synth.executor import periodic
from synth.store import LOCK

LEASE_SECONDS = 60.0
"""How long a lease holds without renewal; the holder renews it every third of that."""
SETTLE_SECONDS = 0.5
"""How long a new holder waits before reading its lease back: a writer that raced it has overwritten it by then."""


class StageBusy(SynthError):
    """Another synth process is writing the same stage directory (exit 2): nothing was written."""

    exit_code = 2


@contextlib.contextmanager
def stage_lock(directory: Path) -> Iterator[None]:
    """Hold `DIR/_synth.lock` (flock) while writing DIR; a second writer stops at once, naming the holder. A
    mounted directory (an object store) is held by a lease as well (`stage_lease`).

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
        with stage_lease(Path(directory)):
            yield
    finally:
        os.close(fd)  # releases the lock


def _read_lease(path: Path) -> dict[str, Any] | None:
    data = storage.read_object(path)
    with contextlib.suppress(ValueError):
        lease = json.loads(data) if data is not None else None
        return lease if isinstance(lease, dict) else None
    return None


def _lapsed(lease: dict[str, Any]) -> bool:
    """A lease past its expiry, or one whose holder was a process of this host that is gone (killed: rerun at once)."""
    if float(lease.get("expires", 0)) < time.time():
        return True
    if lease.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(lease.get("pid", 0)), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError):
        return False
    return int(lease.get("pid", 0)) == os.getpid()


@contextlib.contextmanager
def stage_lease(directory: Path) -> Iterator[None]:
    """`DIR/_synth.lease` on the store: an object naming its owner, host and pid, renewed while the stage runs.

    Taken when there is none, or it lapsed, then read back after `SETTLE_SECONDS`; whoever's lease is read back
    holds it. Object stores offer no compare-and-swap here, so this is not a lock: two writers whose PUTs fall
    within a request's latency of each other could both read back their own; each renewal reads it back again, and
    the stage ends with an error when another writer's lease was found there."""
    path = Path(directory) / storage.LEASE
    if storage.mount_of(path) is None:
        yield
        return
    held = _read_lease(path)
    if held is not None and not _lapsed(held):
        raise StageBusy(f"{storage.display(directory)} is leased by another synth process (pid {held.get('pid')} on "
                        f"{held.get('host')}, until {time.strftime('%H:%M:%S', time.localtime(held['expires']))}); "
                        "wait for it to end or stop it")
    mine = {"owner": uuid.uuid4().hex, "host": socket.gethostname(), "pid": os.getpid()}

    def put() -> None:
        storage.write_object(path, json.dumps({**mine, "expires": time.time() + LEASE_SECONDS}).encode())

    def ours() -> bool:
        return (_read_lease(path) or {}).get("owner") == mine["owner"]

    put()
    time.sleep(SETTLE_SECONDS)
    if not ours():
        raise StageBusy(f"{storage.display(directory)} was leased by another synth process at the same moment; "
                        "wait for it to end or stop it")
    lost = threading.Event()

    def renew() -> bool:
        if not ours():
            lost.set()
            return False
        put()
        return True

    try:
        with periodic.every(LEASE_SECONDS / 3, renew, "synth-lease"):
            yield
    finally:
        if ours():
            storage.delete_object(path)
    if lost.is_set():
        raise StageBusy(f"{storage.display(directory)}: another synth process took the stage's lease while this one "
                        "ran; check both runs' parts")
