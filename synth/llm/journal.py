"""The response journal: every answered request is committed at once to SQLite (WAL), keyed by a request hash.

A run killed with `kill -9` loses nothing that was answered, bar what its last moments had not yet committed; a
rerun reads answers back instead of re-sending. WAL mode with a busy timeout lets two processes share one journal
without corrupting it. Inside an event loop a writer thread commits the answers as they come, those that arrived
while it committed in its next transaction (group commit: a per-row commit costs more than the whole HTTP
exchange at a thousand answers a second), and the loop never waits for the disk: SQLite releases the GIL while
it works, and a loop that waited for it would wait again for the GIL behind the stage's other threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import threading
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
GATHER_SECONDS = 0.01
"""How long the writer thread lets answers gather before it commits them in one transaction: at most a hundred
commits a second (a commit per answer would cost more than the answer's HTTP exchange), and a killed run loses at
most the answers of the last hundredth of a second."""
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
    """Answers by request key. Inside an event loop a writer thread commits them as they come (the loop never waits
    for SQLite), and lookups of one loop iteration share one query; without a loop each answer is committed at once.
    """

    def __init__(self, path: Path | str, stage: str = ""):
        self.path = Path(path)
        self.stage = stage
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = _connect(self.path)
            _enable_wal(self._db)
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"journal {self.path} cannot be opened: {exc}") from exc
        self._pending: dict[str, tuple[str, str, str, float]] = {}
        """Answers recorded and not yet committed: lookups read them here until they are in the database."""
        self._lock = threading.Lock()  # guards `_pending` between the loop and the writer thread
        self._write_lock = threading.Lock()  # one transaction at a time, from the writer or from `commit`
        self._wake = threading.Event()
        self._writer: threading.Thread | None = None
        self._stopping = False
        self._failure: BaseException | None = None
        self._lookups: dict[str, asyncio.Future[Any]] | None = None
        # Opened as immutable: no lock, WAL or shared-memory file, so it may sit on a network file system.
        self._seed = sqlite3.connect(f"{_seed.resolve().as_uri()}?immutable=1", uri=True, check_same_thread=False) \
            if _seed is not None and _seed.exists() else None

    def get_many(self, keys: list[str]) -> dict[str, Any]:
        """The journaled answers among `keys`, those not yet committed included (a lookup never waits for a
        commit)."""
        wanted = list(dict.fromkeys(keys))
        with self._lock:
            found = {key: json.loads(self._pending[key][2]) for key in wanted if key in self._pending}
        for db in (self._db, self._seed) if self._seed is not None else (self._db,):
            found.update(_lookup(db, [key for key in wanted if key not in found]))
        return found

    async def get(self, key: str) -> Any | None:
        """One journaled answer (or None), looked up in one query with every other asked in the same event-loop
        iteration: a query per request would cost more than the request's HTTP exchange."""
        if self._lookups is None:
            self._lookups = {}
            asyncio.get_running_loop().call_soon(self._look_up)
        future = self._lookups.get(key)
        if future is None:
            future = self._lookups[key] = asyncio.get_running_loop().create_future()
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
        """Record one answer: inside an event loop the writer thread commits it at once, beside the loop; without
        a loop it is committed before this returns."""
        if self._failure is not None:
            raise ConfigError(f"journal {self.path} cannot be written: {self._failure}") from self._failure
        row = (key, self.stage, json.dumps(value, ensure_ascii=False), time.time())
        with self._lock:
            self._pending[key] = row
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self.commit()
            return
        if self._writer is None:
            self._writer = threading.Thread(target=self._write_forever, name=f"synth-journal-{self.stage}",
                                            daemon=True)
            self._writer.start()
        self._wake.set()

    def put_many(self, items: Iterable[tuple[str, Any]]) -> None:
        """Record many answers (an imported batch output) and commit them in one transaction."""
        now = time.time()
        rows = {key: (key, self.stage, json.dumps(value, ensure_ascii=False), now) for key, value in items}
        with self._lock:
            self._pending.update(rows)
        self.commit()

    def commit(self) -> None:
        """Write and commit the answers recorded so far, in one transaction."""
        self._commit(self._db)

    def _commit(self, db: sqlite3.Connection) -> None:
        with self._write_lock:
            with self._lock:
                rows = list(self._pending.values())
            if not rows:
                return
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("INSERT OR REPLACE INTO responses (key, stage, value, created) VALUES (?, ?, ?, ?)",
                               rows)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            with self._lock:  # committed: lookups find them in the database from now on
                for row in rows:
                    if self._pending.get(row[0]) is row:
                        del self._pending[row[0]]

    def _write_forever(self) -> None:
        """The writer thread: commit whatever was recorded since its last commit, until the journal closes."""
        db = _connect(self.path)
        try:
            while not self._stopping:
                self._wake.wait()
                time.sleep(GATHER_SECONDS)
                self._wake.clear()
                self._commit(db)
        except BaseException as exc:  # the next `put` says so; the answers stay pending for `close` to retry
            self._failure = exc
        finally:
            db.close()

    def _stop_writer(self) -> None:
        if self._writer is not None:
            self._stopping = True
            self._wake.set()
            self._writer.join()
            self._writer = None
            self._stopping = False

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
        """Commit what is still pending (the writer's last answers included) and close."""
        self._stop_writer()
        self.commit()
        self._db.close()
        if self._seed is not None:
            self._seed.close()


def _connect(path: Path) -> sqlite3.Connection:
    """A connection to a journal: autocommit (transactions are explicit), WAL + NORMAL sync (survives a killed
    process, fsyncs less)."""
    db = sqlite3.connect(path, timeout=60.0, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA synchronous=NORMAL")
    return db


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
