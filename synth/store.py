"""The shard store: complete-or-absent Parquet parts, per-stage manifest and rejects.

Layout of a stage output directory::

    OUT/retrieval/part-00000.parquet     one folder per task type, parts in the unified schema
    OUT/_rejects/retrieval/part-00000.parquet
    OUT/_manifest.json                   per part: fingerprint, config hash, rows, timings, stats
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from synth.errors import InputFileError
from synth.schema import REJECT_SCHEMA, RejectKind, Task, to_table
from synth.tasks import TASKS

MANIFEST = "_manifest.json"
REJECTS = "_rejects"
PART_ROWS = 10_000
"""Default rows per part: big enough for Parquet to compress well, small enough to lose little on a crash."""


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be opened
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def current_umask() -> int:
    """The process's umask (reading it means setting it; set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[str]:
    """A temporary name beside `path` to write to; afterwards it is fsynced and renamed over `path`, or removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fchmod(fh.fileno(), 0o666 & ~current_umask())  # mkstemp makes 0600: a team's data folder needs more
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not exc.filename:  # pyarrow's write errors name no file: name it
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file so that it exists only when complete: temporary name, fsync, rename."""
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)


def atomic_write_table(path: Path, table: pa.Table) -> None:
    """Write a zstd Parquet file that exists only when complete."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def part_name(index: int) -> str:
    return f"part-{index:05d}"


@dataclass(frozen=True)
class PartRef:
    """One Parquet part of a stage directory: `key` is `task/part-NNNNN`, unique within the stage."""

    task: Task
    name: str
    path: Path

    @property
    def key(self) -> str:
        return f"{self.task.value}/{self.name}"


def list_parts(directory: Path) -> list[PartRef]:
    """Every finished part of a stage directory, in a stable order (task, then part name)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputFileError(f"not a stage directory: {directory}")
    parts = []
    for task in TASKS:
        sub = directory / task.value
        if sub.is_dir():
            parts += [PartRef(task, p.stem, p) for p in sorted(sub.glob("part-*.parquet"))]
    return parts


def read_part(part: PartRef) -> pa.Table:
    return pq.read_table(part.path)


def iter_rows(directory: Path, task: Task | None = None) -> Iterator[dict[str, Any]]:
    """Stream every record of a stage directory, part by part (memory stays bounded by one part)."""
    for part in list_parts(directory):
        if task is None or part.task == task:
            yield from read_part(part).to_pylist()


def file_fingerprint(path: Path) -> str:
    """SHA-256 of a file's bytes: what decides whether an input changed."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def config_hash(config: dict[str, Any]) -> str:
    """Hash of a stage's resolved configuration (secrets must be left out by the caller)."""
    text = json.dumps(config, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class Manifest:
    """`_manifest.json` of one stage directory, rewritten atomically after every finished part."""

    def __init__(self, directory: Path, stage: str):
        self.directory = Path(directory)
        self.path = self.directory / MANIFEST
        self.stage = stage
        self.data: dict[str, Any] = {"stage": stage, "config": {}, "config_hash": "", "parts": {}}
        if self.path.exists():
            try:
                loaded = json.loads(self.path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise InputFileError(f"{self.path} is not valid JSON ({exc}); delete it to redo the stage") from exc
            if loaded.get("stage") == stage:
                self.data = loaded

    @property
    def parts(self) -> dict[str, dict[str, Any]]:
        return self.data["parts"]

    def set_config(self, config: dict[str, Any]) -> str:
        digest = config_hash(config)
        self.data["config"] = config
        self.data["config_hash"] = digest
        return digest

    def is_done(self, key: str, fingerprint: str, cfg_hash: str) -> bool:
        """A part is done when it was finished with the same input and config and is still on disk."""
        entry = self.parts.get(key)
        if not entry or entry.get("fingerprint") != fingerprint or entry.get("config_hash") != cfg_hash:
            return False
        return all((self.directory / rel).exists() for rel in entry.get("files", []))

    def record(self, key: str, entry: dict[str, Any]) -> None:
        self.parts[key] = {**entry, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        self.save()

    def set(self, name: str, value: Any) -> None:
        """Stage-level facts (totals, global artifacts) beside the per-part entries."""
        self.data[name] = value
        self.save()

    def save(self) -> None:
        text = json.dumps(self.data, indent=1, ensure_ascii=False, sort_keys=True)
        atomic_write_bytes(self.path, text.encode("utf-8"))

    def totals(self) -> dict[str, Any]:
        """Sum of rows and of every numeric stat over all parts."""
        total: dict[str, Any] = {"parts": len(self.parts), "rows_in": 0, "rows_out": 0, "rows_rejected": 0}
        reasons: dict[str, int] = {}
        stats: dict[str, float] = {}
        for entry in self.parts.values():
            for key in ("rows_in", "rows_out", "rows_rejected"):
                total[key] += entry.get(key, 0)
            for rule, count in entry.get("rejects_by_rule", {}).items():
                reasons[rule] = reasons.get(rule, 0) + count
            for key, value in entry.get("stats", {}).items():
                if isinstance(value, int | float):
                    stats[key] = stats.get(key, 0) + value
        total["rejects_by_rule"] = reasons
        total["stats"] = stats
        return total


def write_part(directory: Path, task: Task | str, name: str, rows: list[dict[str, Any]]) -> str:
    """Write one output part; returns its path relative to the stage directory."""
    rel = f"{Task(task).value}/{name}.parquet"
    atomic_write_table(Path(directory) / rel, to_table(task, rows))
    return rel


def write_rejects(directory: Path, task: Task | str, name: str, rejects: list[dict[str, Any]]) -> str | None:
    """Write the rejects of one part (if any); returns the relative path or None."""
    if not rejects:
        return None
    rel = f"{REJECTS}/{Task(task).value}/{name}.parquet"
    table = pa.Table.from_pylist([{f: r[f] for f in REJECT_SCHEMA.names} for r in rejects], schema=REJECT_SCHEMA)
    atomic_write_table(Path(directory) / rel, table)
    return rel


def location(source: PartRef | str, number: int, record_id: str | None = None, *, unit: str = "row",
             negative: int | None = None) -> str:
    """Where a reject came from, the one format every stage writes: `FILE:row N` (`line N` for a line of a text
    file), then ` id ID` of the record and ` negative I` of one of its negatives when there is one.

    A stage part is named by its key, `retrieval/part-00000.parquet`, so parts of two task types never read alike.
    Meant for people: code tells records from negatives by the reject's `kind`, never by parsing this.
    """
    text = f"{f'{source.key}.parquet' if isinstance(source, PartRef) else source}:{unit} {number}"
    if record_id is not None:
        text += f" id {record_id}"
    if negative is not None:
        text += f" negative {negative}"
    return text


def reject(
    stage: str, location: str, rule: str, reason: str, record: Any, kind: RejectKind = "record"
) -> dict[str, str]:
    """One reject row: what it dropped (`kind`), where it came from, which rule dropped it and why, and the row."""
    if not isinstance(record, str):
        record = json.dumps(record, ensure_ascii=False, default=str)
    return {"stage": stage, "kind": kind, "location": location, "rule": rule, "reason": reason, "record": record}


def iter_rejects(directory: Path) -> Iterator[dict[str, Any]]:
    """Every reject of a stage directory; files written before rejects had a `kind` read as records."""
    root = Path(directory) / REJECTS
    if root.is_dir():
        for path in sorted(root.rglob("*.parquet")):
            for row in pq.read_table(path).to_pylist():
                yield {"kind": "record", **row}
