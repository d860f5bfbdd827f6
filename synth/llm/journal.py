"""The response journal: every answered request is committed at once to SQLite (WAL), keyed by a request hash.

A run killed with `kill -9` loses nothing that was answered; a rerun reads answers back instead of re-sending.
WAL mode with a busy timeout lets two processes share one journal without corrupting it. Inside an event loop the
answers that arrive in one loop iteration share one commit, made at the end of that iteration (group commit), and
the lookups of one iteration share one query: a query or a commit per request costs more than the request's HTTP
exchange at a thousand answers a second (and each is a moment the loop lets go of the GIL and must wait for it).
A writer thread was tried instead of the group commit and cost more CPU than it saved (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from synth import storage
from synth.errors import ConfigError
from synth.store import atomic_path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY, stage TEXT NOT NULL, value TEXT NOT NULL, created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS endpoint_facts (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_LOOKUP_CHUNK = 500
JOURNAL_NAME = "_journal.sqlite"
SNAPSHOTS = "_journals"
"""Folder beside a stage's parts with the journal snapshots a cluster's tasks ship (one per part), and `SEED`."""
SEED = "_local.sqlite"
"""Snapshot of the stage's `_journal.sqlite` (a local run's answers) that a cluster's tasks read answers from."""


def _beside_output(out: Path) -> Path:
    return Path(out) / JOURNAL_NAME


_locator: Callable[[Path], Path] = _beside_output
_seed: Path | None = None


def journal_path(out: Path | str) -> Path:
    """Where the journal of the stage writing `out` lives: beside its parts, unless an executor placed it elsewhere
    (on a cluster, node-local disk: SQLite's WAL must not sit on a network file system)."""
    return _locator(Path(out))


def set_journal_locator(locator: Callable[[Path], Path] | None, seed: Path | None = None) -> None:
    """Install where journals are opened in this process (None restores `OUT/_journal.sqlite`), and a journal
    snapshot they also read answers from (read-only, never written while in use)."""
    global _locator, _seed
    _locator = locator or _beside_output
    _seed = seed


def fold_snapshots(out: Path) -> int:
    """Move the answers of the snapshots a cluster run left in `OUT/_journals/` into `OUT/_journal.sqlite`, so that
    a local run pays for none of them again; returns the answers added."""
    folder = Path(out) / SNAPSHOTS
    added = 0
    snapshots = sorted(folder.glob("*.sqlite")) if folder.is_dir() else []
    for snapshot in snapshots:
        added += merge_journal(snapshot, Path(out) / JOURNAL_NAME)
    if snapshots:
        storage.committed(Path(out) / JOURNAL_NAME)  # on an object store, put before the snapshots go
    for snapshot in snapshots:
        storage.unlink(snapshot)  # its answers are in the stage's journal, which a cluster run seeds from (`SEED`)
    return added


def ship_seed(out: Path) -> Path | None:
    """Snapshot `OUT/_journal.sqlite` (a local run's answers) to `OUT/_journals/_local.sqlite` for a cluster's tasks
    to read; None when there is no such journal."""
    journal, seed = Path(out) / JOURNAL_NAME, Path(out) / SNAPSHOTS / SEED
    if not journal.exists():
        storage.unlink(seed)  # a journal its user removed is not read through an old snapshot either
        return None
    seed.parent.mkdir(parents=True, exist_ok=True)
    copy_journal(journal, seed)
    return seed


def copy_journal(source: Path, target: Path) -> None:
    """A consistent copy of a journal that may be in use (SQLite's online backup), renamed into place when whole."""
    with contextlib.ExitStack() as stack:
        src = stack.enter_context(contextlib.closing(sqlite3.connect(source, timeout=60.0)))
        tmp = stack.enter_context(atomic_path(Path(target)))
        with contextlib.closing(sqlite3.connect(tmp)) as dst:
            src.backup(dst)


def merge_journal(source: Path, target: Path) -> int:
    """Add the answers of journal `source` that `target` lacks (seeding a retried part); returns the answers added."""
    with contextlib.closing(sqlite3.connect(target, timeout=60.0, isolation_level=None)) as db:
        db.executescript(_SCHEMA)
        before = db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
        db.execute("ATTACH DATABASE ? AS seed", (str(source),))
        db.execute("BEGIN")
        db.execute("INSERT OR IGNORE INTO responses SELECT * FROM seed.responses")
        db.execute("INSERT OR IGNORE INTO endpoint_facts SELECT * FROM seed.endpoint_facts")
        db.execute("COMMIT")
        db.execute("DETACH DATABASE seed")
        return db.execute("SELECT COUNT(*) FROM responses").fetchone()[0] - before


class Journal:
    """Answers by request key, committed one by one so a crash loses at most the request in flight."""

    def __init__(self, path: Path | str, stage: str = ""):
        self.path = Path(path)
        self.stage = stage
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None, check_same_thread=False)
            _enable_wal(self._db)
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL survives a killed process, fsyncs less
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"journal {self.path} cannot be opened: {exc}") from exc
        self._commit_scheduled = False
        self._pending: dict[str, tuple[str, str, str, float]] = {}
        self._lookups: dict[str, asyncio.Future[Any]] | None = None
        # Opened as immutable: no lock, WAL or shared-memory file, so it may sit on a network file system.
        self._seed = sqlite3.connect(f"{_seed.resolve().as_uri()}?immutable=1", uri=True, check_same_thread=False) \
            if _seed is not None and _seed.exists() else None

    def get_many(self, keys: list[str]) -> dict[str, Any]:
        """The journaled answers among `keys`, those still waiting for their group commit included (a lookup does
        not commit: a commit per lookup would undo the group commit)."""
        wanted = list(dict.fromkeys(keys))
        found = {key: json.loads(self._pending[key][2]) for key in wanted if key in self._pending}
        for db in (self._db, self._seed) if self._seed is not None else (self._db,):
            found.update(_lookup(db, [key for key in wanted if key not in found]))
        return found

    async def get(self, key: str) -> Any | None:
        """One journaled answer (or None), looked up in one query with every other asked in the same event-loop
        iteration."""
        loop = asyncio.get_running_loop()
        if self._lookups is None:
            self._lookups = {}
            loop.call_soon(self._look_up)
        future = self._lookups.get(key)
        if future is None:
            future = self._lookups[key] = loop.create_future()
        return await future

    def _look_up(self) -> None:
        lookups, self._lookups = self._lookups or {}, None
        try:
            found = self.get_many(list(lookups))
        except BaseException as exc:
            for future in lookups.values():
                if not future.done():
                    future.set_exception(exc)
            return
        for key, future in lookups.items():
            if not future.done():
                future.set_result(found.get(key))

    def put(self, key: str, value: Any) -> None:
        """Record one answer; it is committed before the event loop does anything else (at once without a loop)."""
        self._pending[key] = (key, self.stage, json.dumps(value, ensure_ascii=False), time.time())
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.commit()
            return
        if not self._commit_scheduled:
            self._commit_scheduled = True
            loop.call_soon(self.commit)

    def put_many(self, items: Iterable[tuple[str, Any]]) -> None:
        """Record many answers (an imported batch output) and commit them in one transaction."""
        now = time.time()
        self._pending.update((key, (key, self.stage, json.dumps(value, ensure_ascii=False), now))
                             for key, value in items)
        self.commit()

    def commit(self) -> None:
        """Write and commit the answers recorded so far, in one transaction."""
        self._commit_scheduled = False
        if self._pending:
            rows, self._pending = list(self._pending.values()), {}
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT OR REPLACE INTO responses (key, stage, value, created) VALUES (?, ?, ?, ?)", rows
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def __len__(self) -> int:
        self.commit()
        return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def fact(self, name: str) -> str | None:
        """A remembered fact about an endpoint (for example which structured-output form it accepts)."""
        row = self._db.execute("SELECT value FROM endpoint_facts WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def set_fact(self, name: str, value: str) -> None:
        self.commit()
        self._db.execute("INSERT OR REPLACE INTO endpoint_facts (name, value) VALUES (?, ?)", (name, value))

    def close(self) -> None:
        self.commit()
        self._db.close()
        if self._seed is not None:
            self._seed.close()


def _lookup(db: sqlite3.Connection, keys: list[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for start in range(0, len(keys), _LOOKUP_CHUNK):
        chunk = keys[start : start + _LOOKUP_CHUNK]
        marks = ",".join("?" * len(chunk))
        rows = db.execute(f"SELECT key, value FROM responses WHERE key IN ({marks})", chunk)
        found.update((key, json.loads(value)) for key, value in rows)
    return found


def _enable_wal(db: sqlite3.Connection, attempts: int = 100) -> None:
    """Switch to WAL; two processes opening a new journal at once may find it locked, which the busy timeout does
    not cover for a journal-mode change: wait and try again."""
    for attempt in range(attempts):
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.05)
