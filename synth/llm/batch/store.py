"""Batch state in the stage's journal (`_journal.sqlite`): requests waiting for a batch, batches and their states.

Everything is committed before anything is waited on, so a killed run finds what it submitted and polls it instead
of submitting again. A request is in at most one live batch: it stays in `batch_requests` under that batch until
the batch ends, and an answered request is in the journal, where the engine finds it before it could be collected.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synth.llm.journal import Journal

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batch_requests (
    key TEXT PRIMARY KEY, url TEXT NOT NULL, body TEXT NOT NULL, batch TEXT, attempts INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS batch_failures (
    key TEXT PRIMARY KEY, error TEXT NOT NULL, content TEXT, finish_reason TEXT
);
CREATE TABLE IF NOT EXISTS batch_jobs (
    id TEXT PRIMARY KEY, url TEXT NOT NULL, endpoint TEXT NOT NULL, requests INTEGER NOT NULL,
    file_id TEXT, batch_id TEXT, status TEXT NOT NULL, created REAL NOT NULL, finished REAL,
    completed INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0,
    prompt_tokens INTEGER NOT NULL DEFAULT 0, completion_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0
);
"""
TERMINAL = ("completed", "failed", "expired", "cancelled")
"""Batch states after which nothing more will be answered (its output and error files are final)."""


@dataclass
class Job:
    """One submitted (or being submitted) batch: our id, the provider's file and batch ids and its state."""

    id: str
    url: str
    endpoint: str
    requests: int
    file_id: str | None
    batch_id: str | None
    status: str
    created: float
    finished: float | None
    completed: int
    failed: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float

    @property
    def live(self) -> bool:
        """Not yet read back: `finished` is set once its files are in the journal."""
        return self.finished is None


class BatchStore:
    """The batch tables of one stage journal; a second connection beside the engine's (SQLite WAL)."""

    def __init__(self, journal_path: Path | str, stage: str = ""):
        self.journal = Journal(journal_path, stage)  # creates the file and the answers table, in WAL mode
        self._db = sqlite3.connect(journal_path, timeout=60.0, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # ----- what the collector asks -------------------------------------------------------------------------------

    def answered(self, key: str) -> str | None:
        """The journaled content of a chat answer (the engine found it invalid, or it would not ask)."""
        found = self.journal.get_many([key]).get(key)
        return found.get("content") if isinstance(found, dict) else None

    def failure(self, key: str) -> tuple[str, str | None, str | None] | None:
        """(error, content, finish_reason) of a request that ended without a usable answer."""
        return self._db.execute("SELECT error, content, finish_reason FROM batch_failures WHERE key = ?",
                                (key,)).fetchone()

    def collect(self, requests: dict[str, tuple[str, str]]) -> None:
        """Make `requests` (key -> url, body JSON) exactly the ones waiting for a batch: new ones are added, ones a
        run no longer asks for are dropped; those in a live batch are left there."""
        with self.transaction() as db:
            db.executemany("INSERT OR IGNORE INTO batch_requests (key, url, body) VALUES (?, ?, ?)",
                           [(key, url, body) for key, (url, body) in requests.items()])
            waiting = [row[0] for row in db.execute("SELECT key FROM batch_requests WHERE batch IS NULL")]
            db.executemany("DELETE FROM batch_requests WHERE key = ?", [(k,) for k in waiting if k not in requests])

    # ----- requests and batches ----------------------------------------------------------------------------------

    def pending(self) -> list[tuple[str, str, str]]:
        """(key, url, body JSON) of every request in no live batch, in the order they were collected."""
        return self._db.execute(
            "SELECT key, url, body FROM batch_requests WHERE batch IS NULL ORDER BY rowid").fetchall()

    def counts(self) -> tuple[int, int]:
        """(requests waiting for a batch, requests in live batches)."""
        waiting = self._db.execute("SELECT COUNT(*) FROM batch_requests WHERE batch IS NULL").fetchone()[0]
        return waiting, self._db.execute("SELECT COUNT(*) FROM batch_requests WHERE batch IS NOT NULL").fetchone()[0]

    def new_job(self, url: str, endpoint: str, keys: list[str]) -> str:
        """Journal a batch about to be uploaded, with its requests, before anything is sent."""
        job_id = f"synth-{uuid.uuid4().hex[:16]}"
        with self.transaction() as db:
            db.execute("INSERT INTO batch_jobs (id, url, endpoint, requests, status, created) "
                       "VALUES (?, ?, ?, ?, ?, ?)", (job_id, url, endpoint, len(keys), "uploading", time.time()))
            db.executemany("UPDATE batch_requests SET batch = ? WHERE key = ?", [(job_id, k) for k in keys])
        return job_id

    def keys_of(self, job_id: str) -> list[str]:
        return [row[0] for row in self._db.execute("SELECT key FROM batch_requests WHERE batch = ?", (job_id,))]

    def bodies_of(self, job_id: str) -> list[tuple[str, str, str]]:
        return self._db.execute("SELECT key, url, body FROM batch_requests WHERE batch = ? ORDER BY rowid",
                                (job_id,)).fetchall()

    def update_job(self, job_id: str, **fields: Any) -> None:
        names = ", ".join(f"{name} = ?" for name in fields)
        self._db.execute(f"UPDATE batch_jobs SET {names} WHERE id = ?", (*fields.values(), job_id))

    def jobs(self) -> list[Job]:
        rows = self._db.execute("SELECT id, url, endpoint, requests, file_id, batch_id, status, created, finished, "
                                "completed, failed, prompt_tokens, completion_tokens, cost_usd "
                                "FROM batch_jobs ORDER BY created")
        return [Job(*row) for row in rows]

    def settle(self, answered: set[str], errors: dict[str, str], max_attempts: int) -> None:
        """After a batch ended or a file was imported: answered requests leave; each one in `errors` counts one more
        attempt and waits for the next batch, or fails for good after `max_attempts` (a batch that keeps expiring
        ends). Requests in neither are left as they are."""
        marks = ",".join("?" * len(errors))
        rows = self._db.execute(f"SELECT key, attempts FROM batch_requests WHERE key IN ({marks})",
                                list(errors)).fetchall() if errors else []
        with self.transaction() as db:
            db.executemany("DELETE FROM batch_requests WHERE key = ?", [(k,) for k in answered])
            for key, attempts in rows:
                if attempts + 1 >= max_attempts:
                    db.execute("DELETE FROM batch_requests WHERE key = ?", (key,))
                    db.execute("INSERT OR REPLACE INTO batch_failures (key, error) VALUES (?, ?)",
                               (key, f"batch: gave up after {attempts + 1} attempts: {errors[key]}"))
                else:
                    db.execute("UPDATE batch_requests SET batch = NULL, attempts = ? WHERE key = ?",
                               (attempts + 1, key))

    def forget_errors(self) -> None:
        """A new run asks again what failed for good in an earlier one (as online mode does); answers the model
        stopped early stay, since the same request would stop the same way."""
        self._db.execute("DELETE FROM batch_failures WHERE content IS NULL")

    def stopped(self, answers: list[tuple[str, str, str, str]]) -> None:
        """Answers the model stopped early, (key, error, content, finish_reason) each, in one transaction: the stage
        rejects them and tries another seed (as online)."""
        with self.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO batch_failures (key, error, content, finish_reason) "
                           "VALUES (?,?,?,?)", answers)

    def close(self) -> None:
        self.journal.close()
        self._db.close()
