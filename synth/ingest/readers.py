"""Streaming readers for JSONL, CSV, TSV and Parquet: located rows and per-row read errors, chunk by chunk.

Memory stays flat: text files are read line by line (a giant line is skipped in blocks, never held whole) and
Parquet by row batches. Other stages reuse these readers for side files (a persona pool, an external corpus)::

    from synth.ingest.readers import read_rows
    for row in read_rows("personas.jsonl"):       # fmt from the extension, or fmt="jsonl"|"csv"|"tsv"|"parquet"
        if row.ok:
            use(row.values)                       # dict column -> value
        else:
            report(row.location, row.rule, row.reason)   # e.g. "personas.jsonl:line 7", "malformed_json", ...

`.gz` text files are read transparently; a UTF-8 byte-order mark and CRLF line ends are normal input.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from synth.errors import InputFileError

FORMATS = ("jsonl", "csv", "tsv", "parquet")
EXTENSIONS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
DEFAULT_MAX_RECORD_BYTES = 8 << 20
"""A record larger than this (8 MiB) is a reject, not a memory spike."""
CHUNK_ROWS = 10_000
BOM = b"\xef\xbb\xbf"
_RAW_PREVIEW = 2_000  # characters of an unreadable row kept in its reject
_JSON_SIZE = json.JSONEncoder(ensure_ascii=False, default=str)


@dataclass(frozen=True, slots=True)
class SourceRow:
    """One input row: its values, or why it could not be read (`rule`, `reason`, a preview in `raw`)."""

    location: str
    values: dict[str, Any] | None = None
    rule: str = ""
    reason: str = ""
    raw: str = ""

    @property
    def ok(self) -> bool:
        return self.values is not None


@dataclass(frozen=True, slots=True)
class Chunk:
    """A fixed run of consecutive input rows with the SHA-256 of their input bytes; `load()` parses them."""

    index: int
    span: str
    digest: str
    position: int
    """Bytes of the file read so far, for progress."""
    loader: Callable[..., list[SourceRow]]
    payload: tuple[Any, ...]
    """Arguments of `loader`: plain data and a module-level function, so a chunk can go to a worker process."""

    def load(self) -> list[SourceRow]:
        return self.loader(*self.payload)


def detect_format(path: Path, fmt: str | None = None) -> str:
    """The format named by `fmt`, else by the file extension (`.gz` looked through); one-line error otherwise."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise InputFileError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
        return fmt
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    found = EXTENSIONS.get(suffixes[-1]) if suffixes else None
    if found is None:
        raise InputFileError(
            f"cannot tell the format of {path} from its extension; pass --format ({', '.join(FORMATS)})"
        )
    return found


def read_rows(
    path: Path | str, fmt: str | None = None, *, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
) -> Iterator[SourceRow]:
    """Every row of a file in order, readable or not (see the module docstring)."""
    for chunk in read_chunks(Path(path), fmt, max_record_bytes=max_record_bytes):
        yield from chunk.load()


def read_chunks(
    path: Path, fmt: str | None = None, *, rows: int = CHUNK_ROWS, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
) -> Iterator[Chunk]:
    """The file as chunks of `rows` consecutive rows; a chunk's digest depends only on its own input bytes."""
    path = Path(path)
    fmt = detect_format(path, fmt)
    if not path.is_file():
        raise InputFileError(f"input file not found: {path}")
    if fmt == "jsonl":
        return _jsonl_chunks(path, rows, max_record_bytes)
    if fmt == "parquet":
        return _parquet_chunks(path, rows, max_record_bytes)
    return _delimited_chunks(path, "\t" if fmt == "tsv" else ",", rows, max_record_bytes)


def columns(path: Path, fmt: str | None = None, *, sample_rows: int = 100) -> set[str]:
    """Column names of a file: the header or schema, or for JSONL the keys of its first readable objects."""
    path = Path(path)
    fmt = detect_format(path, fmt)
    if not path.is_file():
        raise InputFileError(f"input file not found: {path}")
    if fmt == "parquet":
        return set(_parquet_file(path).schema_arrow.names)
    if fmt == "jsonl":
        found: set[str] = set()
        seen = 0
        for row in (row for chunk in read_chunks(path, fmt, rows=sample_rows) for row in chunk.load()):
            if row.ok:
                found.update(row.values or {})
                seen += 1
                if seen >= sample_rows:
                    break
        return found
    with _open_binary(path) as (fh, _raw):
        first = fh.readline(DEFAULT_MAX_RECORD_BYTES)
    header = _decode_line(first.removeprefix(BOM))[0]
    return set(next(csv.reader([header], **_dialect("\t" if fmt == "tsv" else ",")), []))


@contextlib.contextmanager
def _open_binary(path: Path) -> Iterator[tuple[IO[bytes], IO[bytes]]]:
    """The file's (decompressed) byte stream and the raw file beneath it (whose position shows progress)."""
    with open(path, "rb") as raw:
        if path.suffix.lower() == ".gz":
            with gzip.GzipFile(fileobj=raw) as fh:
                yield fh, raw
        else:
            yield raw, raw


def _read_line(fh: IO[bytes], max_bytes: int) -> tuple[bytes, int]:
    """Next line with its full size; a line over `max_bytes` comes back empty, drained block by block."""
    line = fh.readline(max_bytes + 2)
    if len(line) <= max_bytes or (line.endswith(b"\n") and len(line.rstrip(b"\r\n")) <= max_bytes):
        return line, len(line)
    size = len(line)
    while not line.endswith(b"\n"):
        line = fh.readline(1 << 20)
        if not line:
            break
        size += len(line)
    return b"", size


def _decode_line(line: bytes) -> tuple[str, int | None]:
    """Text of a line, and the byte offset of the first invalid UTF-8 byte (None when valid)."""
    try:
        return line.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return line.decode("utf-8", errors="replace"), exc.start


def _too_large(location: str, size: int, max_bytes: int) -> SourceRow:
    return SourceRow(
        location, rule="too_large", reason=f"record of {size:,} bytes exceeds the {max_bytes:,}-byte limit"
    )


def _jsonl_chunks(path: Path, rows: int, max_bytes: int) -> Iterator[Chunk]:
    name = path.name
    with _open_binary(path) as (fh, raw):
        lineno, index = 0, 0
        batch: list[tuple[int, bytes, int]] = []
        digest = hashlib.sha256()
        while True:
            line, size = _read_line(fh, max_bytes)
            if not size:
                break
            lineno += 1
            giant = not line
            digest.update(f"<{size} bytes>".encode() if giant else line)
            if lineno == 1:
                line = line.removeprefix(BOM)
            if giant or line.strip():
                batch.append((lineno, line, size))
            if len(batch) == rows:
                yield _jsonl_chunk(name, index, batch, digest.hexdigest(), raw.tell(), max_bytes)
                index, batch, digest = index + 1, [], hashlib.sha256()
        if batch:
            yield _jsonl_chunk(name, index, batch, digest.hexdigest(), raw.tell(), max_bytes)


def _jsonl_chunk(
    name: str, index: int, batch: list[tuple[int, bytes, int]], digest: str, pos: int, max_bytes: int
) -> Chunk:
    span = f"lines {batch[0][0]}-{batch[-1][0]}"
    return Chunk(index, span, digest, pos, _load_jsonl, (name, batch, max_bytes))


def jsonl_lines(chunk: Chunk) -> tuple[str, list[tuple[int, bytes, int]]] | None:
    """A JSONL chunk's file name and its (line number, bytes, size) lines, for ingest's vectorised path;
    None for a chunk of another format."""
    return (chunk.payload[0], chunk.payload[1]) if chunk.loader is _load_jsonl else None


def _load_jsonl(name: str, batch: list[tuple[int, bytes, int]], max_bytes: int) -> list[SourceRow]:
    return [_parse_json_line(f"{name}:line {number}", line, size, max_bytes) for number, line, size in batch]


def _parse_json_line(location: str, line: bytes, size: int, max_bytes: int) -> SourceRow:
    if not line:
        return _too_large(location, size, max_bytes)
    text, bad = _decode_line(line)
    if bad is not None:
        return SourceRow(location, rule="invalid_utf8", reason=f"invalid UTF-8 at byte {bad}", raw=text[:_RAW_PREVIEW])
    try:
        value = json.loads(text.rstrip("\r\n"))
    except json.JSONDecodeError as exc:
        reason = f"malformed JSON: {exc.msg.removesuffix(' at')} at column {exc.colno}"
        return SourceRow(location, rule="malformed_json", reason=reason, raw=text[:_RAW_PREVIEW])
    if not isinstance(value, dict):
        reason = f"expected a JSON object, got {type(value).__name__}"
        return SourceRow(location, rule="not_an_object", reason=reason, raw=text[:_RAW_PREVIEW])
    if "\\u" in text and not _encodable(value):
        reason = "lone surrogate escape: the text is not valid Unicode"
        return SourceRow(location, rule="invalid_unicode", reason=reason, raw=text[:_RAW_PREVIEW])
    return SourceRow(location, value)


def _encodable(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _dialect(delimiter: str) -> dict[str, Any]:
    # TSV has no quoting convention (IANA): a quote is text, as in GLUE's TSV files.
    if delimiter == "\t":
        return {"delimiter": "\t", "quoting": csv.QUOTE_NONE, "strict": True}
    return {"delimiter": ",", "strict": True}


class _LineFeed:
    """Decoded lines for `csv.reader`, remembering the raw bytes, invalid UTF-8 and giant lines it met."""

    def __init__(self, fh: IO[bytes], max_bytes: int):
        self.fh, self.max_bytes = fh, max_bytes
        self.lineno = 0
        self.digest = hashlib.sha256()
        self.size = 0
        self.bad_utf8: int | None = None
        self.giant = False
        self.text: list[str] = []

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line, size = _read_line(self.fh, self.max_bytes)
        if not size:
            raise StopIteration
        self.lineno += 1
        self.size += size
        if not line:
            self.giant = True
            self.digest.update(f"<{size} bytes>".encode())
            return "\n"
        self.digest.update(line)
        if self.lineno == 1:
            line = line.removeprefix(BOM)
        text, bad = _decode_line(line)
        if bad is not None and self.bad_utf8 is None:
            self.bad_utf8 = bad
        self.text.append(text)
        return text

    def take(self) -> tuple[int, int | None, bool, str]:
        """Size, first invalid byte, giant flag and text of the lines read since the last call."""
        state = (self.size, self.bad_utf8, self.giant, "".join(self.text))
        self.size, self.bad_utf8, self.giant, self.text = 0, None, False, []
        return state


@contextlib.contextmanager
def _field_limit(limit: int) -> Iterator[None]:
    previous = csv.field_size_limit()
    csv.field_size_limit(limit)
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def _delimited_chunks(path: Path, delimiter: str, rows: int, max_bytes: int) -> Iterator[Chunk]:
    name = path.name
    with _open_binary(path) as (fh, raw), _field_limit(max_bytes):
        feed = _LineFeed(fh, max_bytes)
        reader = csv.reader(feed, **_dialect(delimiter))
        header = next(reader, None)
        if header is None:
            return
        feed.take()
        header_digest = feed.digest.hexdigest()
        batch: list[SourceRow] = []
        index, first_line = 0, feed.lineno + 1
        while True:
            start = feed.lineno + 1
            try:
                record = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                text = feed.take()[3]
                reason = f"malformed CSV record (lines {start}-{feed.lineno}): {exc}"
                batch.append(SourceRow(f"{name}:line {start}", rule="malformed_csv", reason=reason, raw=text))
            else:
                size, bad, giant, text = feed.take()
                if record or giant:
                    location = f"{name}:line {start}"
                    batch.append(_delimited_row(location, header, record, size, bad, giant, max_bytes, text))
            if len(batch) == rows:
                yield _ready_chunk(index, f"lines {first_line}-{feed.lineno}", header_digest, feed, raw.tell(), batch)
                index, batch, first_line = index + 1, [], feed.lineno + 1
        if batch:
            yield _ready_chunk(index, f"lines {first_line}-{feed.lineno}", header_digest, feed, raw.tell(), batch)


def _ready_chunk(index: int, span: str, header_digest: str, feed: _LineFeed, pos: int, batch: list[SourceRow]) -> Chunk:
    """A chunk of already parsed rows; the header's digest is folded in, since renaming a column changes every row."""
    digest = hashlib.sha256(f"{header_digest}:{feed.digest.hexdigest()}".encode()).hexdigest()
    feed.digest = hashlib.sha256()
    return Chunk(index, span, digest, pos, _parsed, (list(batch),))


def _parsed(rows: list[SourceRow]) -> list[SourceRow]:
    """Loader of CSV/TSV chunks, whose rows are parsed while reading (a record may span lines)."""
    return rows


def _delimited_row(
    location: str,
    header: list[str],
    record: list[str],
    size: int,
    bad: int | None,
    giant: bool,
    max_bytes: int,
    raw: str,
) -> SourceRow:
    if giant or size > max_bytes:
        return _too_large(location, size, max_bytes)
    if bad is not None:
        return SourceRow(location, rule="invalid_utf8", reason=f"invalid UTF-8 at byte {bad} of the record", raw=raw)
    if len(record) != len(header):
        reason = f"expected {len(header)} fields as in the header, got {len(record)}"
        return SourceRow(location, rule="malformed_csv", reason=reason, raw=raw)
    return SourceRow(location, dict(zip(header, record, strict=True)))


def _parquet_file(path: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputFileError(f"{path} is not a readable Parquet file: {exc}") from exc


def _parquet_chunks(path: Path, rows: int, max_bytes: int) -> Iterator[Chunk]:
    name = path.name
    parquet = _parquet_file(path)
    total_rows = max(parquet.metadata.num_rows, 1)
    size = path.stat().st_size
    start = 0
    for index, batch in enumerate(parquet.iter_batches(batch_size=rows)):
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, batch.schema) as writer:
            writer.write_batch(batch)
        digest = hashlib.sha256(sink.getvalue()).hexdigest()
        end = start + batch.num_rows
        span = f"rows {start}-{end - 1}"
        position = size * end // total_rows
        yield Chunk(index, span, digest, position, _load_parquet, (name, batch, start, max_bytes))
        start = end


def parquet_batch(chunk: Chunk) -> tuple[str, pa.RecordBatch, int, int] | None:
    """A Parquet chunk's file name, row batch, first row number and record size limit, for ingest's vectorised
    path; None for a chunk of another format."""
    if chunk.loader is not _load_parquet:
        return None
    name, batch, start, max_bytes = chunk.payload
    return name, batch, start, max_bytes


def _load_parquet(name: str, batch: pa.RecordBatch, start: int, max_bytes: int) -> list[SourceRow]:
    sizes = _row_sizes(batch, max_bytes)
    rows = []
    for offset, values in enumerate(batch.to_pylist()):
        location = f"{name}:row {start + offset}"
        size = sizes[offset]
        rows.append(_too_large(location, size, max_bytes) if size > max_bytes else SourceRow(location, values))
    return rows


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind)


def _row_sizes(batch: pa.RecordBatch, max_bytes: int) -> list[int]:
    """Bytes of each row's text, binary and nested cells (nested ones as JSON); all 0 when the whole batch fits."""
    if batch.get_total_buffer_size() <= max_bytes:
        return [0] * batch.num_rows
    total = pa.array([0] * batch.num_rows, pa.int64())
    for column in batch.columns:
        if _is_text(column.type):
            total = pc.add(total, pc.fill_null(pc.binary_length(column), 0).cast(pa.int64()))
        elif pa.types.is_nested(column.type):
            lengths = [len(_JSON_SIZE.encode(value)) for value in column.to_pylist()]
            total = pc.add(total, pa.array(lengths, pa.int64()))
    return total.to_pylist()
