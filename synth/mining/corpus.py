"""Where mining candidates come from: the records' positives, external corpus files, or both."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from synth.errors import InputFileError
from synth.store import PartRef, read_part

CORPUS_SOURCES = ("positives", "file", "both")


def text_key(text: str) -> int:
    """64-bit key of a text exactly as written: identifies one corpus item."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def normalized_key(text: str) -> int:
    """64-bit key of a text after case folding and whitespace collapsing: equal keys are exact duplicates."""
    return text_key(" ".join(text.casefold().split()))


def keys_of(texts: list[str], key=text_key) -> np.ndarray:
    return np.fromiter((key(t) for t in texts), dtype=np.uint64, count=len(texts))


def read_corpus_file(path: Path, field: str = "text") -> Iterator[str]:
    """Passages of a corpus file: `.txt` (one per line), `.jsonl` (`field` of each object) or `.parquet` (column)."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"corpus file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        table = pq.read_table(path)
        if field not in table.column_names:
            raise InputFileError(f"corpus file {path} has no column {field!r} (columns: {table.column_names})")
        yield from (t for t in table.column(field).to_pylist() if t and t.strip())
    elif suffix in (".jsonl", ".json"):
        yield from _jsonl_texts(path, field)
    elif suffix == ".txt":
        with open(path, encoding="utf-8") as fh:
            yield from (line.rstrip("\n") for line in fh if line.strip())
    else:
        raise InputFileError(f"corpus file {path}: expected .txt, .jsonl or .parquet")


def _jsonl_texts(path: Path, field: str) -> Iterator[str]:
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)[field]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise InputFileError(f"{path}:{number}: expected a JSON object with a {field!r} string") from exc
            if not isinstance(value, str):
                raise InputFileError(f"{path}:{number}: {field!r} must be a string")
            if value.strip():
                yield value


def iter_pairs(parts: list[PartRef]) -> Iterator[tuple[str, str]]:
    """(query, positive) of every retrieval record, part by part."""
    for part in parts:
        if part.task.value != "retrieval":
            continue
        table = read_part(part).select(["query", "positive"])
        yield from zip(table.column("query").to_pylist(), table.column("positive").to_pylist(), strict=True)
