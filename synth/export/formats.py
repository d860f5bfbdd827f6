"""Row converters, one per (format, task): pure functions from a unified record to a trainer's row.

A converter returns None for a record the format cannot express (for example fewer negatives than the fixed number
of `negative_N` columns sentence-transformers needs); the exporter counts those as skipped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from synth.embed.instructions import format_query
from synth.schema import Task

Converter = Callable[[dict[str, Any], "ExportSettings"], dict[str, Any] | None]


class ExportSettings:
    """What shapes the exported rows: negatives per row (fixed-column formats) and the query format."""

    def __init__(self, num_negatives: int, instruction_format: str | None):
        self.num_negatives = num_negatives
        self.instruction_format = instruction_format

    def query(self, text: str, instruction: str | None) -> str:
        """The query as the trainer sees it: with its instruction only when a query format is asked for."""
        return format_query(text, instruction, self.instruction_format) if self.instruction_format else text


def with_negatives(row: dict[str, Any], negatives: list[str], n: int) -> dict[str, Any] | None:
    if len(negatives) < n:
        return None
    return {**row, **{f"negative_{i + 1}": text for i, text in enumerate(negatives[:n])}}


def st_retrieval(record: dict[str, Any], settings: ExportSettings) -> dict[str, Any] | None:
    """MultipleNegativesRankingLoss: anchor, positive, negative_1..n."""
    row = {"anchor": settings.query(record["query"], record["instruction"]), "positive": record["positive"]}
    return with_negatives(row, record["negatives"] or [], settings.num_negatives)


def st_sts(record: dict[str, Any], settings: ExportSettings) -> dict[str, Any] | None:
    """CoSENTLoss / CosineSimilarityLoss: sentence1, sentence2, score in [0, 1]."""
    return {"sentence1": record["text_a"], "sentence2": record["text_b"], "score": float(record["score"])}


def st_cls(record: dict[str, Any], settings: ExportSettings) -> dict[str, Any] | None:
    """Classification as pairs: anchor, positive (same class), negative_1..n (other classes), label."""
    if not record.get("positive"):
        return None
    row = {"anchor": record["text"], "positive": record["positive"]}
    shaped = with_negatives(row, record["negatives"] or [], settings.num_negatives)
    return {**shaped, "label": record["label"]} if shaped else None


def flag_retrieval(record: dict[str, Any], settings: ExportSettings) -> dict[str, Any] | None:
    return {
        "query": settings.query(record["query"], record["instruction"]),
        "pos": [record["positive"]],
        "neg": list(record["negatives"] or []),
        "pos_scores": [record["positive_score"]] if record.get("positive_score") is not None else [],
        "neg_scores": list(record.get("negative_scores") or []),
        "prompt": record["instruction"],
        "type": "normal",
    }


def flag_sts(record: dict[str, Any], settings: ExportSettings) -> dict[str, Any] | None:
    """An STS pair as a query with one positive whose score is the similarity label (filter on it to train)."""
    return {"query": record["text_a"], "pos": [record["text_b"]], "neg": [], "pos_scores": [float(record["score"])],
            "neg_scores": [], "prompt": record["instruction"], "type": "symmetric_sts"}


def flag_cls(record: dict[str, Any], settings: ExportSettings) -> dict[str, Any] | None:
    """FlagEmbedding's `symmetric_class`: no in-batch negatives, so same-class texts are never pushed apart."""
    if not record.get("positive"):
        return None
    return {"query": record["text"], "pos": [record["positive"]], "neg": list(record["negatives"] or []),
            "pos_scores": [], "neg_scores": [], "prompt": record["instruction"], "type": "symmetric_class"}


def plain(record: dict[str, Any], settings: ExportSettings) -> dict[str, Any] | None:
    """The unified record itself, `meta` decoded from its JSON text."""
    return {**record, "meta": json.loads(record.get("meta") or "{}")}


FORMATS: dict[str, dict[Task, Converter]] = {
    "sentence-transformers": {Task.RETRIEVAL: st_retrieval, Task.STS: st_sts, Task.CLS: st_cls},
    "flagembedding": {Task.RETRIEVAL: flag_retrieval, Task.STS: flag_sts, Task.CLS: flag_cls},
    "jsonl": {Task.RETRIEVAL: plain, Task.STS: plain, Task.CLS: plain},
}
FILE_TYPES = {"sentence-transformers": "parquet", "flagembedding": "jsonl", "jsonl": "jsonl"}
"""sentence-transformers gets Parquet (typed columns for `datasets`); the JSON formats get JSON Lines."""
FIXED_NEGATIVES = frozenset({"sentence-transformers"})
"""Formats whose rows need the same number of negative columns."""
