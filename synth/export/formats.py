"""Export formats and their row converters: pure functions from a unified record to a trainer's row.

A converter returns None for a record the format cannot express (for example fewer negatives than the fixed number
of `negative_N` columns sentence-transformers needs); the exporter counts those as skipped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the task table imports this module, so it imports nothing of synth at run time
    from synth.export.writer import ExportSettings

Converter = Callable[[dict[str, Any], "ExportSettings"], dict[str, Any] | None]


def with_negatives(row: dict[str, Any], negatives: list[str], n: int) -> dict[str, Any] | None:
    if len(negatives) < n:
        return None
    return {**row, **{f"negative_{i + 1}": text for i, text in enumerate(negatives[:n])}}


def st_retrieval(record: dict[str, Any], settings: ExportSettings) -> dict[str, Any] | None:
    """MultipleNegativesRankingLoss: anchor, positive, negative_1..n; with teacher scores (`mine --rescore-model`)
    also `label`, MarginMSELoss's teacher margins: positive minus each negative (a number for one negative)."""
    row = {"anchor": settings.query(record["query"], record["instruction"]), "positive": record["positive"]}
    shaped = with_negatives(row, record["negatives"] or [], settings.num_negatives)
    teacher = record.get("negative_teacher_scores")
    if shaped is None or not settings.num_negatives or teacher is None or record.get("positive_teacher_score") is None:
        return shaped
    margins = [record["positive_teacher_score"] - s for s in teacher[:settings.num_negatives]]
    return {**shaped, "label": margins[0] if len(margins) == 1 else margins}


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


@dataclass(frozen=True)
class ExportFormat:
    """What a format's files are; which converter writes which task type is in `synth.tasks.TASKS`."""

    file_type: str
    fixed_negatives: bool = False
    """Whether every row needs the same number of negative columns."""


FORMATS: dict[str, ExportFormat] = {
    "sentence-transformers": ExportFormat("parquet", fixed_negatives=True),  # typed columns for `datasets`
    "flagembedding": ExportFormat("jsonl"),
    "jsonl": ExportFormat("jsonl"),
}
