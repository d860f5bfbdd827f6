"""Plain-text and Markdown documents: a `.txt` / `.md` file, or a folder of them (searched recursively), one row each.

A row is `{"text": ..., "id": PATH}` with PATH relative to the folder given (the file name for a single file), so
ids do not depend on where the folder lives. A file that cannot be read, holds NUL bytes (binary), is not UTF-8 or
is over the record limit is a located reject, never a crash; its neighbours are kept.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

from synth.ingest.readers import BOM, TEXT_EXTENSIONS, Chunk, SourceRow, too_large

_BINARY_PROBE = 8192


def text_files(root: Path) -> list[Path]:
    """The documents under `root` (itself when it is a file), in the order of their relative paths."""
    if root.is_file():
        return [root]
    return sorted((p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_EXTENSIONS),
                  key=lambda p: p.relative_to(root).as_posix())


def has_text_files(folder: Path) -> bool:
    return any(p.suffix.lower() in TEXT_EXTENSIONS for p in folder.rglob("*") if p.is_file())


def total_bytes(root: Path) -> int:
    return sum(_size(path) for path in text_files(root))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def text_chunks(root: Path, rows: int, max_bytes: int) -> Iterator[Chunk]:
    """Chunks of `rows` files; a chunk's digest hashes its files' relative paths and bytes."""
    base = root.parent if root.is_file() else root
    files = [path.relative_to(base).as_posix() for path in text_files(root)]
    position = 0
    for index, begin in enumerate(range(0, len(files), rows)):
        names = files[begin:begin + rows]
        digest = hashlib.sha256()
        for name in names:
            digest.update(f"{name}\x00{_file_digest(base / name)}\x00".encode())
            position += _size(base / name)
        span = f"files {begin + 1}-{begin + len(names)}"
        yield Chunk(index, span, digest.hexdigest(), position, _load_text_files, (str(base), names, max_bytes))


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
    except OSError as exc:
        return f"unreadable {exc.errno}"
    return digest.hexdigest()


def _load_text_files(base: str, names: list[str], max_bytes: int) -> list[SourceRow]:
    return [_read_document(Path(base), name, max_bytes) for name in names]


def _read_document(base: Path, name: str, max_bytes: int) -> SourceRow:
    location = f"{base.name}/{name}" if base.name else name
    path = base / name
    try:
        size = path.stat().st_size
        if size > max_bytes:
            return too_large(location, size, max_bytes)
        data = path.read_bytes()
    except OSError as exc:
        return SourceRow(location, rule="unreadable", reason=f"cannot read the file: {exc.strerror or exc}")
    if b"\x00" in data[:_BINARY_PROBE]:
        return SourceRow(location, rule="binary", reason="NUL bytes: a binary file, not text")
    try:
        text = data.removeprefix(BOM).decode("utf-8")
    except UnicodeDecodeError as exc:
        return SourceRow(location, rule="invalid_utf8", reason=f"invalid UTF-8 at byte {exc.start}")
    return SourceRow(location, {"text": text, "id": name})
