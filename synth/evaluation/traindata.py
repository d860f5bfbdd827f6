"""The training pairs of `synth eval`: retrieval triplets and STS pairs, from a final directory or an export folder.

A final directory holds unified parts (`TASK/part-*.parquet`); an export folder holds sentence-transformers files
(`[sentence-transformers/]TASK/train-*.parquet`); a split directory its `train/` side. Classification records and
passages are not trained on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from synth.errors import InputFileError
from synth.schema import Task
from synth.store import file_fingerprint, list_parts

EXPORT_FORMAT = "sentence-transformers"


@dataclass
class TrainData:
    """Rows per loss: retrieval as (anchor, positive, negative_1..n), STS as (sentence1, sentence2, score)."""

    retrieval: list[list[str]] = field(default_factory=list)
    sts: list[tuple[str, str, float]] = field(default_factory=list)
    skipped: int = 0
    """Retrieval rows with fewer negatives than asked for."""
    files: list[Path] = field(default_factory=list)


def train_directory(path: Path) -> Path:
    """The folder holding the training files: `path`, or its `train/` side (a split directory)."""
    path = Path(path)
    return path / "train" if (path / "train").is_dir() else path


def export_files(directory: Path, task: Task) -> list[Path]:
    for base in (directory / EXPORT_FORMAT, directory):
        found = sorted((base / task.value).glob("train-*.parquet"))
        if found:
            return found
    return []


def add_retrieval(data: TrainData, anchors: list[str], positives: list[str], negatives: list[list[str]],
                  wanted: int) -> None:
    for anchor, positive, negs in zip(anchors, positives, negatives, strict=True):
        if len(negs) < wanted:
            data.skipped += 1
        else:
            data.retrieval.append([anchor, positive, *negs[:wanted]])


def from_final(directory: Path, negatives: int) -> TrainData:
    data = TrainData()
    for part in list_parts(directory):
        if part.task is Task.RETRIEVAL:
            table = pq.read_table(part.path, columns=["query", "positive", "negatives"]).to_pydict()
            add_retrieval(data, table["query"], table["positive"], table["negatives"], negatives)
        elif part.task is Task.STS:
            table = pq.read_table(part.path, columns=["text_a", "text_b", "score"]).to_pydict()
            data.sts += zip(table["text_a"], table["text_b"], table["score"], strict=True)
        else:
            continue
        data.files.append(part.path)
    return data


def from_export(directory: Path, negatives: int) -> TrainData:
    data = TrainData()
    for path in export_files(directory, Task.RETRIEVAL):
        table = pq.read_table(path).to_pydict()
        columns = sorted((c for c in table if c.startswith("negative_")), key=lambda c: int(c.split("_")[1]))
        if len(columns) < negatives:
            raise InputFileError(f"{path} has {len(columns)} negative columns, fewer than --negatives {negatives}: "
                                 f"export with --num-negatives {negatives} or ask for fewer")
        rows = [list(values) for values in zip(*(table[c] for c in columns), strict=True)] if columns else None
        add_retrieval(data, table["anchor"], table["positive"], rows or [[]] * len(table["anchor"]), negatives)
        data.files.append(path)
    for path in export_files(directory, Task.STS):
        table = pq.read_table(path, columns=["sentence1", "sentence2", "score"]).to_pydict()
        data.sts += zip(table["sentence1"], table["sentence2"], table["score"], strict=True)
        data.files.append(path)
    return data


def load_train_data(path: Path, negatives: int) -> TrainData:
    """Every retrieval and STS row to train on, or a one-line error when there is none."""
    directory = train_directory(path)
    if not directory.is_dir():
        raise InputFileError(f"training data not found: {path}")
    data = from_final(directory, negatives) if list_parts(directory) else from_export(directory, negatives)
    if not data.retrieval and not data.sts:
        extra = (f" ({data.skipped} retrieval rows have fewer than {negatives} negatives: --negatives 0 trains on "
                 "them with in-batch negatives only)") if data.skipped else ""
        raise InputFileError(f"no retrieval or STS rows to train on in {directory}{extra}: expected a final "
                             f"directory (TASK/part-*.parquet) or an export folder ({EXPORT_FORMAT}/TASK/train-*)")
    return data


def fingerprints(paths: list[Path]) -> dict[str, str]:
    """File -> SHA-256 of its bytes: what decides whether an earlier evaluation still holds."""
    return {str(p): file_fingerprint(p) for p in paths}
