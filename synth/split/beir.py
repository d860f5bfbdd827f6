"""The eval side in BEIR layout: `corpus.jsonl`, `queries.jsonl` and `qrels/test.tsv`, beside its parts.

The corpus is every text of the eval side a retriever should search: the positives, the negatives of eval
records (so the hard distractors the data was built with are there) and the eval passages; deduplicated by exact
text, so one text has one corpus id. Ids are content hashes (`c` + 16 hex for corpus, `q` + 16 hex for queries),
the same on every run. STS and CLS records have no BEIR form and are left out.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from synth.schema import Task
from synth.store import atomic_write_bytes, iter_rows, list_parts

CORPUS = "corpus.jsonl"
QUERIES = "queries.jsonl"
QRELS = "qrels/test.tsv"
BEIR_FILES = (CORPUS, QUERIES, QRELS)


def text_id(prefix: str, text: str) -> str:
    return prefix + hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")


def write_beir(directory: Path) -> dict[str, int]:
    """Write the BEIR files of the eval stage directory from its parts; returns corpus, query and qrel counts.

    With no retrieval or passage records the files are removed, so no stale corpus outlives its records."""
    directory = Path(directory)
    tasks = {part.task for part in list_parts(directory)} if directory.is_dir() else set()
    corpus: dict[str, dict[str, str]] = {}
    queries: dict[str, dict[str, str]] = {}
    qrels: dict[tuple[str, str], None] = {}

    def add_text(text: str, title: str | None = None) -> str:
        entry = corpus.setdefault(text, {"_id": text_id("c", text), "title": "", "text": text})
        entry["title"] = entry["title"] or title or ""
        return entry["_id"]

    if Task.PASSAGE in tasks:
        for row in iter_rows(directory, Task.PASSAGE):
            add_text(row["text"], row.get("title"))
    if Task.RETRIEVAL in tasks:
        for row in iter_rows(directory, Task.RETRIEVAL):
            query = queries.setdefault(row["query"], {"_id": text_id("q", row["query"]), "text": row["query"]})
            qrels[(query["_id"], add_text(row["positive"]))] = None
            for negative in row.get("negatives") or []:
                add_text(negative)
    if not corpus:
        for name in BEIR_FILES:
            (directory / name).unlink(missing_ok=True)
        return {"corpus": 0, "queries": 0, "qrels": 0}
    atomic_write_bytes(directory / CORPUS, jsonl(list(corpus.values())))
    atomic_write_bytes(directory / QUERIES, jsonl(list(queries.values())))
    lines = ["query-id\tcorpus-id\tscore", *(f"{q}\t{c}\t1" for q, c in qrels)]
    atomic_write_bytes(directory / QRELS, ("\n".join(lines) + "\n").encode("utf-8"))
    return {"corpus": len(corpus), "queries": len(queries), "qrels": len(qrels)}
