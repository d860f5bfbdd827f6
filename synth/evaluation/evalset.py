"""Read an eval set: BEIR-layout retrieval (`corpus.jsonl`, `queries.jsonl`, `qrels/test.tsv`) and/or STS pairs
(`sts.jsonl`: `sentence1`, `sentence2`, `score`), checked before any work.

A split directory (`synth split`'s OUT) is accepted too: its `eval/` side holds those files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from synth.errors import InputFileError

FILES = ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv")
STS_FILE = "sts.jsonl"
QRELS_HEADER = ["query-id", "corpus-id", "score"]


@dataclass(frozen=True)
class EvalSet:
    """The eval set as the metrics need it: texts in a fixed order, and the relevant corpus rows per query."""

    directory: Path
    corpus_ids: list[str]
    corpus_texts: list[str]
    query_ids: list[str]
    query_texts: list[str]
    relevant: list[set[int]]
    """Per query (same order), the rows of the corpus with a qrel score above 0."""
    sts: list[tuple[str, str, float]] = field(default_factory=list)
    """STS pairs with their gold score (Spearman of the cosines against it)."""

    def files(self) -> list[Path]:
        names = (FILES if self.query_ids else ()) + ((STS_FILE,) if self.sts else ())
        return [self.directory / name for name in names]


def eval_directory(path: Path) -> Path:
    """The folder holding the BEIR files: `path` itself, or its `eval/` side (a split directory)."""
    path = Path(path)
    if not any((path / name).exists() for name in ("corpus.jsonl", STS_FILE)) and \
            any((path / "eval" / name).exists() for name in ("corpus.jsonl", STS_FILE)):
        return path / "eval"
    return path


def read_jsonl(path: Path, fields: tuple[str, ...]) -> list[dict[str, str]]:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputFileError(f"{path}:line {number}: not JSON ({exc.msg})") from exc
            missing = [f for f in fields if not isinstance(row, dict) or f not in row]
            if missing:
                raise InputFileError(f"{path}:line {number}: no {missing[0]!r} field")
            rows.append(row)
    return rows


def read_qrels(path: Path) -> list[tuple[str, str, float]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or lines[0].split("\t") != QRELS_HEADER:
        raise InputFileError(f"{path}: the first line must be the tab-separated header {' '.join(QRELS_HEADER)}")
    qrels = []
    for number, line in enumerate(lines[1:], 2):
        cells = line.split("\t")
        if len(cells) != 3:
            raise InputFileError(f"{path}:line {number}: expected 3 tab-separated cells, got {len(cells)}")
        try:
            qrels.append((cells[0], cells[1], float(cells[2])))
        except ValueError as exc:
            raise InputFileError(f"{path}:line {number}: score {cells[2]!r} is not a number") from exc
    return qrels


def read_sts(path: Path) -> list[tuple[str, str, float]]:
    pairs = []
    for number, row in enumerate(read_jsonl(path, ("sentence1", "sentence2", "score")), 1):
        try:
            pairs.append((str(row["sentence1"]), str(row["sentence2"]), float(row["score"])))
        except (TypeError, ValueError):
            raise InputFileError(f"{path}: pair {number}: score {row['score']!r} is not a number") from None
    if len(pairs) < 2:
        raise InputFileError(f"{path}: a Spearman correlation needs at least 2 pairs, got {len(pairs)}")
    return pairs


def load_eval_set(path: Path) -> EvalSet:
    """The eval set at `path`, or a one-line error naming the missing file or the unknown id."""
    directory = eval_directory(path)
    sts = read_sts(directory / STS_FILE) if (directory / STS_FILE).is_file() else []
    if sts and not any((directory / name).exists() for name in FILES):
        return EvalSet(directory, [], [], [], [], [], sts)
    for name in FILES:
        if not (directory / name).is_file():
            raise InputFileError(f"eval set {directory}: no {name} (expected the BEIR layout {', '.join(FILES)})")
    corpus = read_jsonl(directory / "corpus.jsonl", ("_id", "text"))
    queries = read_jsonl(directory / "queries.jsonl", ("_id", "text"))
    rows = {str(row["_id"]): index for index, row in enumerate(corpus)}
    query_texts = {str(row["_id"]): str(row["text"]) for row in queries}
    relevant: dict[str, set[int]] = {}
    for query_id, corpus_id, score in read_qrels(directory / "qrels/test.tsv"):
        if query_id not in query_texts:
            raise InputFileError(f"{directory}/qrels/test.tsv names query {query_id!r}, not in queries.jsonl")
        if corpus_id not in rows:
            raise InputFileError(f"{directory}/qrels/test.tsv names document {corpus_id!r}, not in corpus.jsonl")
        if score > 0:
            relevant.setdefault(query_id, set()).add(rows[corpus_id])
    if not relevant:
        raise InputFileError(f"{directory}/qrels/test.tsv: no query has a relevant document (score > 0)")
    ids = sorted(relevant)
    return EvalSet(directory, list(rows), [document_text(row) for row in corpus], ids,
                   [query_texts[i] for i in ids], [relevant[i] for i in ids], sts)


def document_text(row: dict[str, str]) -> str:
    """A BEIR document as one text: its title and its text, as BEIR's own evaluation joins them."""
    title = str(row.get("title") or "").strip()
    return f"{title} {row['text']}" if title else str(row["text"])
