"""Where mining candidates come from: the records' positives and the inputs' passages, external corpus files, or both.

Every candidate keeps the `document_id` it came with (None for a text of no document), so the `same_document`
rule can keep a chunk's siblings out of its query's negatives.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from synth.errors import InputFileError
from synth.ingest.readers import read_rows
from synth.store import PartRef, read_part

CORPUS_SOURCES = ("positives", "file", "both")
"""`positives`: the records' positives and every passage of the inputs; `file`: the --corpus files; `both`."""
NO_DOCUMENT = 0
"""Document key of a text that belongs to no document."""


@dataclass(frozen=True, slots=True)
class CorpusItem:
    text: str
    document_id: str | None = None


@dataclass
class SkippedRows:
    """Unreadable or text-less rows of corpus files: how many, and where the first ones are (`file:line N`)."""

    count: int = 0
    first: list[str] = field(default_factory=list)
    keep: int = 5

    def add(self, where: str, reason: str) -> None:
        self.count += 1
        if len(self.first) < self.keep:
            self.first.append(f"{where}: {reason}")


def text_key(text: str) -> int:
    """64-bit key of a text exactly as written: identifies one corpus item."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def normalized_key(text: str) -> int:
    """64-bit key of a text after case folding and whitespace collapsing: equal keys are exact duplicates."""
    return text_key(" ".join(text.casefold().split()))


def document_key(document_id: str | None) -> int:
    """64-bit key of a document id; NO_DOCUMENT for none (a real id never hashes to 0 in practice)."""
    return NO_DOCUMENT if not document_id else text_key(document_id)


def keys_of(texts: list[str], key=text_key) -> np.ndarray:
    return np.fromiter((key(t) for t in texts), dtype=np.uint64, count=len(texts))


def read_corpus_file(path: Path, field: str, skipped: SkippedRows) -> Iterator[CorpusItem]:
    """Passages of a corpus file: `.txt` (one per line) or any format `read_rows` reads (`field` of each row).

    `.gz` and a UTF-8 byte-order mark are read transparently. A row that cannot be read, or has no `field` text,
    is counted in `skipped` with its location and the file goes on; a `document_id` column is kept when present.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"corpus file not found: {path}")
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes[-1:] == [".gz"]:
        suffixes.pop()
    if suffixes[-1:] == [".txt"]:
        yield from _text_lines(path)
        return
    for row in read_rows(path):
        if not row.ok:
            skipped.add(row.location, row.reason)
            continue
        values: dict[str, Any] = row.values or {}
        text = values.get(field)
        if not isinstance(text, str):
            skipped.add(row.location, f"no {field!r} string")
        elif text.strip():
            document = values.get("document_id")
            yield CorpusItem(text, str(document) if document not in (None, "") else None)


def _text_lines(path: Path) -> Iterator[CorpusItem]:
    """`read_rows` has no plain-text format: one passage per non-blank line, gzip and BOM looked through."""
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    with opener(path, "rt", encoding="utf-8-sig") as fh:
        yield from (CorpusItem(line.rstrip("\r\n")) for line in fh if line.strip())


def iter_positives(parts: list[PartRef]) -> Iterator[tuple[str, str, str | None]]:
    """(query, positive, document_id) of every retrieval record, part by part."""
    for part in parts:
        if part.task.value != "retrieval":
            continue
        table = read_part(part)
        documents = table.column("document_id").to_pylist() if "document_id" in table.column_names else None
        queries, positives = table.column("query").to_pylist(), table.column("positive").to_pylist()
        yield from zip(queries, positives, documents or [None] * len(queries), strict=True)


def iter_passages(parts: list[PartRef]) -> Iterator[CorpusItem]:
    """Every passage of the inputs' `passage` parts, with its document."""
    for part in parts:
        if part.task.value != "passage":
            continue
        table = read_part(part).select(["text", "document_id"])
        for text, document in zip(table.column("text").to_pylist(), table.column("document_id").to_pylist(),
                                  strict=True):
            if text and text.strip():
                yield CorpusItem(text, document)
