"""The shard store: complete-or-absent Parquet parts, per-stage manifest and rejects.

Layout of a stage output directory::

    OUT/retrieval/part-00000.parquet     one folder per task type, parts in the unified schema
    OUT/_rejects/retrieval/part-00000.parquet
    OUT/_manifest.json                   per part: fingerprint, config hash, files, rows, timings, stats
    OUT/_synth.lock                      held (flock) by the one process writing OUT
    OUT/_synth.lease                     on an object store, the lease of that process (`synth.executor.lock`)

Every path a manifest lists is relative and inside OUT; a manifest that says otherwise is refused when read, so a
rerun can never read or delete a file elsewhere.
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
from functools import cached_property
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from synth import storage
from synth.errors import InputFileError
from synth.schema import REJECT_SCHEMA, RejectKind, Task, to_table
from synth.tasks import TASKS

MANIFEST = "_manifest.json"
REJECTS = "_rejects"
LOCK = "_synth.lock"
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


def remove_stale_temporaries(directory: Path) -> None:
    """Remove the temporary files of `atomic_path` that a killed run left in a stage directory; call it holding the
    stage's lock, so that no other run is writing there."""
    for path in Path(directory).rglob(".*.tmp"):
        if path.is_file():
            path.unlink(missing_ok=True)


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
        _fsync_dir(path.parent)
        storage.committed(path)  # a mounted run directory: put as one object
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not exc.filename:  # pyarrow's write errors name no file: name it
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise


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


def part_key(task: Task | str, name: str) -> str:
    """The manifest key of a part, `task/part-NNNNN`: built here only."""
    return f"{Task(task).value}/{name}"


@dataclass(frozen=True)
class PartRef:
    """One Parquet part of a stage directory: `key` is `task/part-NNNNN`, unique within the stage."""

    task: Task
    name: str
    path: Path

    @cached_property
    def key(self) -> str:
        """Made once per part: stages name the part in every reject (and the filter with every row)."""
        return part_key(self.task, self.name)


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
    return pq.read_table(storage.local_copy(part.path))


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


class ManifestError(InputFileError):
    """A manifest that cannot be trusted: not JSON, or naming a file outside its stage directory (exit 2)."""


def inside(directory: Path, rel: str) -> Path:
    """`directory / rel`, refused unless it is a relative path that stays inside `directory` (links resolved)."""
    root = Path(directory).resolve()
    path = (root / rel).resolve()
    if Path(rel).is_absolute() or not path.is_relative_to(root) or path == root:
        raise ManifestError(
            f"{Path(directory) / MANIFEST} lists {rel!r}, outside its stage directory; delete the manifest to redo "
            "the stage"
        )
    return path


def _decode_manifest(path: Path) -> dict[str, Any]:
    """The one reader of a manifest file: valid JSON whose every listed file lies inside its stage directory."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path} is not valid JSON ({exc}); delete it to redo the stage") from exc
    parts = data.get("parts") if isinstance(data, dict) else None
    if not isinstance(parts, dict) or not all(isinstance(e, dict) for e in parts.values()):
        raise ManifestError(f"{path} has no table of parts; delete it to redo the stage")
    for entry in parts.values():
        files = entry.get("files", [])
        if not isinstance(files, list) or not all(isinstance(rel, str) for rel in files):
            raise ManifestError(f"{path}: a part's files must be a list of paths; delete it to redo the stage")
        for rel in files:
            inside(path.parent, rel)
    return data


def read_manifest(directory: Path) -> dict[str, Any] | None:
    """A stage directory's manifest as data (checked as `Manifest` checks it), or None when there is none."""
    path = Path(directory) / MANIFEST
    return _decode_manifest(path) if path.is_file() else None


def manifest_totals(data: dict[str, Any]) -> dict[str, Any]:
    """Rows, failures and every numeric stat summed over a manifest's parts: the one source of a stage's counts."""
    parts = data.get("parts", {})
    total: dict[str, Any] = {"parts": len(parts), "rows_in": 0, "rows_out": 0, "rows_rejected": 0, "failed": 0}
    reasons: dict[str, int] = {}
    stats: dict[str, float] = {}
    for entry in parts.values():
        for key in ("rows_in", "rows_out", "rows_rejected", "failed"):
            total[key] += entry.get(key, 0)
        for rule, count in entry.get("rejects_by_rule", {}).items():
            reasons[rule] = reasons.get(rule, 0) + count
        for key, value in entry.get("stats", {}).items():
            if isinstance(value, int | float):
                stats[key] = stats.get(key, 0) + value
    total["rejects_by_rule"] = reasons
    total["stats"] = stats
    return total


def is_failed(entry: dict[str, Any]) -> bool:
    """A part with rows that could not be finished: redone on the next run (the one encoding of "failed")."""
    return bool(entry.get("failed"))


class Manifest:
    """`_manifest.json` of one stage directory, rewritten atomically after every finished part."""

    def __init__(self, directory: Path, stage: str):
        self.directory = Path(directory)
        self.path = self.directory / MANIFEST
        self.stage = stage
        self.data: dict[str, Any] = {"stage": stage, "config": {}, "config_hash": "", "parts": {}}
        loaded = read_manifest(self.directory)
        if loaded is not None and loaded.get("stage") == stage:
            self.data = loaded

    @property
    def parts(self) -> dict[str, dict[str, Any]]:
        return self.data["parts"]

    def set_config(self, config: dict[str, Any]) -> str:
        digest = config_hash(config)
        self.data["config"] = config
        self.data["config_hash"] = digest
        return digest

    def files(self, key: str) -> list[Path]:
        """The files part `key` wrote, as checked paths inside the stage directory."""
        return [inside(self.directory, rel) for rel in self.parts.get(key, {}).get("files", [])]

    def record(self, key: str, entry: dict[str, Any]) -> None:
        """Record a finished part; files its previous run wrote that this one did not are removed."""
        kept = {inside(self.directory, rel) for rel in entry.get("files", [])}
        for path in self.files(key):
            if path not in kept:
                storage.unlink(path)
        self.parts[key] = {**entry, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        self.save()

    def drop(self, key: str) -> None:
        """Forget a part that is no longer in the input, and remove its files."""
        for path in self.files(key):
            storage.unlink(path)
        del self.parts[key]

    def set(self, name: str, value: Any) -> None:
        """Stage-level facts (totals, global artifacts) beside the per-part entries."""
        self.data[name] = value
        self.save()

    def save(self) -> None:
        text = json.dumps(self.data, indent=1, ensure_ascii=False, sort_keys=True)
        atomic_write_bytes(self.path, text.encode("utf-8"))



def write_part(directory: Path, task: Task | str, name: str, rows: list[dict[str, Any]]) -> str:
    """Write one output part; returns its path relative to the stage directory."""
    return write_part_table(directory, task, name, to_table(task, rows))


def write_part_table(directory: Path, task: Task | str, name: str, table: pa.Table) -> str:
    """Write one output part given as a table in the task's schema; returns its path relative to the directory."""
    rel = f"{Task(task).value}/{name}.parquet"
    atomic_write_table(Path(directory) / rel, table)
    return rel


def write_rejects(directory: Path, task: Task | str, name: str, rejects: list[dict[str, Any]]) -> str | None:
    """Write the rejects of one part; with none, a rejects file an earlier run of the part left is removed."""
    rel = f"{REJECTS}/{Task(task).value}/{name}.parquet"
    if not rejects:
        storage.unlink(Path(directory) / rel)
        return None
    # Column by column: `from_pylist` would build these columns itself, from a dict per reject made here.
    table = pa.Table.from_pydict({f: [r[f] for r in rejects] for f in REJECT_SCHEMA.names}, schema=REJECT_SCHEMA)
    atomic_write_table(Path(directory) / rel, table)
    return rel


def write_rows_file(directory: Path, rel: str, rows: list[dict[str, Any]] | pa.Table) -> str:
    """Write rows in a stage's own layout (`.parquet`, or `.jsonl` for JSON Lines); returns `rel`. A table is
    written with its own schema (split's parts keep the unified schema); rows get an inferred one."""
    path = inside(directory, rel)
    if isinstance(rows, pa.Table):
        if path.suffix != ".parquet":
            raise ValueError(f"a table is written as Parquet, not {rel!r}")
        atomic_write_table(path, rows)
    elif path.suffix == ".parquet":
        atomic_write_table(path, pa.Table.from_pylist(rows))
    elif path.suffix == ".jsonl":
        atomic_write_bytes(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8"))
    else:
        raise ValueError(f"no writer for {rel!r} (use .parquet or .jsonl)")
    return rel


def write_part_files(
    directory: Path,
    task: Task | str,
    name: str,
    rows: list[dict[str, Any]] | pa.Table,
    rejects: list[dict[str, Any]],
    files: dict[str, list[dict[str, Any]] | pa.Table] | None = None,
) -> list[str]:
    """All files of one part, then its rejects; returns their paths relative to the stage directory, as the manifest
    lists them. The rows go to `TASK/NAME.parquet` for the part's task and for every other task type they hold
    (querygen turns passages into retrieval records); a table is already in the task's schema (ingest's vectorised
    path). `files` (path -> rows or a table) replaces them for a stage with its own layout (export, split)."""
    if isinstance(rows, pa.Table):
        written = [write_part_table(directory, task, name, rows)]
    elif files is None:
        tasks = [Task(task), *sorted({Task(t) for t in {row.get("task") or task for row in rows}} - {Task(task)})]
        by_task = {t: rows if len(tasks) == 1 else [r for r in rows if (r.get("task") or task) == t] for t in tasks}
        written = [write_part(directory, t, name, task_rows) for t, task_rows in by_task.items()]
    else:
        written = [write_rows_file(directory, rel, file_rows) for rel, file_rows in files.items()]
    rejects_file = write_rejects(directory, task, name, rejects)
    return written + ([rejects_file] if rejects_file else [])


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


_REJECT_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)
"""What json.dumps(record, ensure_ascii=False, default=str) uses, made once instead of once per reject."""


def reject(
    stage: str, location: str, rule: str, reason: str, record: Any, kind: RejectKind = "record"
) -> dict[str, str]:
    """One reject row: what it dropped (`kind`), where it came from, which rule dropped it and why, and the row."""
    if not isinstance(record, str):
        record = _REJECT_ENCODER.encode(record)
    return {"stage": stage, "kind": kind, "location": location, "rule": rule, "reason": reason, "record": record}


def iter_rejects(directory: Path) -> Iterator[dict[str, Any]]:
    """Every reject of a stage directory; files written before rejects had a `kind` read as records."""
    root = Path(directory) / REJECTS
    if root.is_dir():
        for path in sorted(root.rglob("*.parquet")):
            for row in pq.read_table(path).to_pylist():
                yield {"kind": "record", **row}
