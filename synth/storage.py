"""Run directories on object stores: a `pyarrow.fs` URI (`s3://bucket/run`, `gs://...`) worked on through a copy on
this node's disk.

SQLite journals, memory-mapped indexes and the embedding cache need a local file system, and the whole store is
written with POSIX calls, so a URI is never read in place. `resolve_dir` mounts it instead: the committed objects
are pulled into a node-local copy (`$TMPDIR/synth-remote/HASH/NAME`), the stage runs on that copy as on any local
directory, and every file the store commits there (`store.atomic_path`) is put as one whole object. Object PUTs
are atomic, and a part's files are put before the manifest that lists them, so a part is done on the store only
once its manifest entry is; the files of the rest of a stage (journals, the index, the cache) are put when the
stage ends, its manifest last. A local path is used as it is: with nothing mounted every hook here returns at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from synth.errors import ConfigError, SynthError

URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
MANIFEST = "_manifest.json"
LEASE = "_synth.lease"
NOT_SHIPPED = re.compile(r"(^\..*\.tmp$|^_synth\.lock$|-wal$|-shm$|-journal$)")
"""Local files never put on the store: temporaries, the local lock, SQLite's WAL, shared memory and rollback files."""
CHUNK = 8 << 20


class StorageError(SynthError):
    """The object store could not be reached or refused a request (exit 1): nothing committed was lost."""


@dataclass(frozen=True)
class Mount:
    """A run directory given as a URI and its copy on this node's disk."""

    uri: str
    local: str

    @property
    def display(self) -> str:
        """The URI without its query (which may carry an endpoint's keys)."""
        return self.uri.split("?", 1)[0]


_MOUNTS: dict[str, Mount] = {}
"""Local copy -> mount, in this process (a Ray worker gets the driver's through `install`)."""
_FILESYSTEMS: dict[str, tuple[pafs.FileSystem, str]] = {}
_SYNC_DBS: dict[str, sqlite3.Connection] = {}


def is_uri(text: str | os.PathLike[str]) -> bool:
    return bool(URI.match(str(text)))


def resolve_dir(text: str | os.PathLike[str]) -> Path:
    """The one resolver of a run directory: a path as it is (absolute), a URI mounted on its node-local copy."""
    if not is_uri(text):
        return Path(text).resolve()
    if str(text).startswith("file://"):
        return Path(_open(str(text))[1]).resolve()
    return mount(str(text))


def _open(uri: str) -> tuple[pafs.FileSystem, str]:
    if uri not in _FILESYSTEMS:
        try:
            _FILESYSTEMS[uri] = pafs.FileSystem.from_uri(uri)
        except (pa.ArrowInvalid, ValueError, OSError) as exc:
            raise ConfigError(f"not a usable run directory URI: {uri.split('?', 1)[0]} ({_first_line(exc)})") from exc
    fs, root = _FILESYSTEMS[uri]
    return fs, root.rstrip("/")


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def mount(uri: str) -> Path:
    """Mount `uri` on its node-local copy and pull what is committed there; fails in one line when the store
    cannot be reached."""
    _open(uri)
    name = Path(uri.split("?", 1)[0].rstrip("/")).name or "run"
    base = Path(os.environ.get("SYNTH_REMOTE_CACHE") or Path(tempfile.gettempdir()) / "synth-remote")
    local = base / hashlib.sha256(uri.encode()).hexdigest()[:16] / name
    local.mkdir(parents=True, exist_ok=True)
    found = Mount(uri, str(local))
    _MOUNTS[found.local] = found
    pull(found)
    return local


def mounts() -> list[Mount]:
    """The mounts of this process, for workers that commit parts of the same run (`install`)."""
    return list(_MOUNTS.values())


def install(given: list[Mount]) -> None:
    """Register the driver's mounts in a worker (nothing is pulled: a worker fetches what it reads)."""
    for found in given:
        _MOUNTS.setdefault(found.local, found)


def mount_of(path: str | os.PathLike[str]) -> tuple[Mount, str] | None:
    """The mount `path` lies in and its key on the store; None for a local path (at once when nothing is mounted)."""
    if not _MOUNTS:
        return None
    text = os.path.abspath(path)
    for local, found in _MOUNTS.items():
        if text == local or text.startswith(local + os.sep):
            rel = os.path.relpath(text, local)
            root = _open(found.uri)[1]
            return found, root if rel == "." else f"{root}/{rel.replace(os.sep, '/')}"
    return None


def display(path: str | os.PathLike[str]) -> str:
    """A directory as its user named it: the URI of a mounted one."""
    located = mount_of(path)
    if located is None:
        return str(path)
    found, key = located
    root = _open(found.uri)[1]
    return found.display + key[len(root):]


@contextlib.contextmanager
def _remote(found: Mount, what: str) -> Any:
    """Calls on the store, any failure one line naming it."""
    try:
        yield _open(found.uri)[0]
    except OSError as exc:
        raise StorageError(f"{found.display}: cannot {what} ({_first_line(exc)})") from exc


def _sync_db(found: Mount) -> sqlite3.Connection:
    """`synced.sqlite` beside a local copy: for each file, its local and remote (size, mtime) when it was last
    pulled or put. A file whose local or remote stamp moved since is fetched again (or put again); every process of
    the node that commits files of the run records here."""
    if found.local not in _SYNC_DBS:
        db = sqlite3.connect(Path(found.local).parent / "synced.sqlite", timeout=60.0, isolation_level=None,
                             check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE IF NOT EXISTS synced (rel TEXT PRIMARY KEY, local_size INT, local_mtime INT, "
                   "remote_size INT, remote_mtime INT)")
        _SYNC_DBS[found.local] = db
    return _SYNC_DBS[found.local]


def _record(found: Mount, rel: str, info: pafs.FileInfo) -> None:
    stat = (Path(found.local) / rel).stat()
    _sync_db(found).execute("INSERT OR REPLACE INTO synced VALUES (?, ?, ?, ?, ?)",
                            (rel, stat.st_size, stat.st_mtime_ns, info.size, info.mtime_ns or 0))


def _in_sync(found: Mount, rel: str, info: pafs.FileInfo | None) -> bool:
    """Whether the local file is the one last pulled or put (and, given `info`, the store still holds that one)."""
    row = _sync_db(found).execute("SELECT local_size, local_mtime, remote_size, remote_mtime FROM synced WHERE rel = ?",
                                  (rel,)).fetchone()
    target = Path(found.local) / rel
    if row is None or not target.is_file():
        return False
    stat = target.stat()
    return (stat.st_size, stat.st_mtime_ns) == row[:2] and (info is None or (info.size, info.mtime_ns or 0) == row[2:])


def pull(found: Mount) -> None:
    """Make the local copy hold what the store holds: every object the copy lacks, or holds another version of, is
    fetched (a journal is merged into the local one, which may hold answers not yet put); a local manifest the store
    lacks is removed, since only the store's manifests say which parts are done."""
    root = _open(found.uri)[1]
    local = Path(found.local)
    with _remote(found, "list the run directory") as fs:
        infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    remote = {info.path[len(root) + 1:]: info for info in infos if info.type == pafs.FileType.File}
    for rel, info in remote.items():
        target = _inside(found, local, rel)
        if Path(rel).name == LEASE or _in_sync(found, rel, info):
            continue
        if target.suffix == ".sqlite" and target.is_file():
            from synth.llm.journal import merge_journal  # here: synth.llm imports the store, which imports this

            with tempfile.TemporaryDirectory() as tmp:
                _download(found, info.path, Path(tmp) / target.name)
                merge_journal(Path(tmp) / target.name, target)
        else:
            _download(found, info.path, target)
        _record(found, rel, info)
    for manifest in local.rglob(MANIFEST):
        if manifest.relative_to(local).as_posix() not in remote:
            manifest.unlink()


def _inside(found: Mount, directory: Path, rel: str) -> Path:
    """`directory / rel` for an object named `rel` on the store, refused when it would land outside the local copy
    (`..` in an object's name)."""
    target = directory / rel
    if not target.resolve().is_relative_to(Path(found.local).resolve()):
        raise StorageError(f"{found.display}: the object {rel} lies outside the run directory; remove it")
    return target


def _download(found: Mount, key: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out, _remote(found, f"read {key}") as fs, fs.open_input_stream(key) as src:
            shutil.copyfileobj(src, out, CHUNK)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def committed(path: str | os.PathLike[str]) -> None:
    """Put a file just committed in a mounted directory as one whole object (an upload that does not finish leaves
    no object); nothing for a local one."""
    located = mount_of(path)
    if located is None:
        return
    found, key = located
    with open(path, "rb") as src, _remote(found, f"write {key}") as fs:
        with fs.open_output_stream(key) as out:
            shutil.copyfileobj(src, out, CHUNK)
        info = fs.get_file_info(key)
    _record(found, key[len(_open(found.uri)[1]) + 1:], info)


def unlink(path: str | os.PathLike[str]) -> None:
    """Remove a file, and its object when the directory is mounted."""
    Path(path).unlink(missing_ok=True)
    if mount_of(path) is not None:
        delete_object(path)


def local_copy(path: str | os.PathLike[str]) -> Path:
    """`path` on this node: a worker on another node than the driver fetches a file of the run it lacks (when the
    store has it)."""
    path = Path(path)
    located = mount_of(path) if _MOUNTS and not path.exists() else None  # a local run: no stat, no store
    if located is not None:
        found, key = located
        with _remote(found, f"read {key}") as fs:
            present = fs.get_file_info(key).type == pafs.FileType.File
        if present:
            _download(found, key, path)
    return path


def local_tree(directory: str | os.PathLike[str]) -> None:
    """Fetch the files of a mounted directory this node lacks (mining's index, on a worker of another node)."""
    located = mount_of(directory)
    if located is None:
        return
    found, key = located
    with _remote(found, f"list {key}") as fs:
        infos = fs.get_file_info(pafs.FileSelector(key, recursive=True, allow_not_found=True))
    for info in infos:
        target = _inside(found, Path(directory), info.path[len(key) + 1:])
        if info.type == pafs.FileType.File and not target.exists():
            _download(found, info.path, target)


def push_tree(directory: str | os.PathLike[str]) -> None:
    """Put every file of a mounted stage directory changed since it was last pulled or put (journals, mining's
    index), its manifest last: what a later run on another node needs beside the parts."""
    located = mount_of(directory)
    if located is None:
        return
    found = located[0]
    manifest = Path(directory) / MANIFEST
    for path in sorted(Path(directory).rglob("*")):
        if path == manifest or not path.is_file() or NOT_SHIPPED.search(path.name):
            continue
        if not _in_sync(found, path.relative_to(found.local).as_posix(), None):
            committed(path)
    if manifest.is_file():
        committed(manifest)


def read_object(path: str | os.PathLike[str]) -> bytes | None:
    """The object at a mounted path, read from the store (None when there is none)."""
    found, key = _located(path)
    with _remote(found, f"read {key}") as fs:
        if fs.get_file_info(key).type != pafs.FileType.File:
            return None
        with fs.open_input_stream(key) as src:
            return src.read()


def write_object(path: str | os.PathLike[str], data: bytes) -> None:
    """Put `data` as the object at a mounted path (not through the local copy)."""
    found, key = _located(path)
    with _remote(found, f"write {key}") as fs, fs.open_output_stream(key) as out:
        out.write(data)


def delete_object(path: str | os.PathLike[str]) -> None:
    found, key = _located(path)
    with _remote(found, f"delete {key}") as fs, contextlib.suppress(FileNotFoundError):
        fs.delete_file(key)


def _located(path: str | os.PathLike[str]) -> tuple[Mount, str]:
    located = mount_of(path)
    if located is None:
        raise ValueError(f"{path} is not in a mounted run directory")
    return located
