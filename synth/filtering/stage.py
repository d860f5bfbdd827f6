"""The filter stage: global decisions (scores, percentiles, duplicates) once in `prepare`, then part by part.

Order per record: length, language, query-positive score, then duplicates among the records that passed (first
occurrence in input order wins), then the optional LLM judge; negatives of kept records then go through length,
language, the false-negative rule and the LLM-negative margin.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from synth.filtering.distributions import summarise
from synth.filtering.duplicates import DuplicateFinder, VectorFn
from synth.filtering.judge import LLMJudge, Verdict
from synth.filtering.negative_rules import false_negative, over_relative_margin
from synth.filtering.record_rules import language_violation, length_violation, too_long
from synth.filtering.scoring import LazyEmbedder
from synth.filtering.settings import setting_for
from synth.filtering.thresholds import below_threshold, resolve_threshold
from synth.llm import endpoint_stats
from synth.llm.accounting import as_part_stats
from synth.llm.settings import LLM_OPTION_DEFAULTS
from synth.schema import Task, negative_origins
from synth.stage import PartResult, Stage
from synth.store import PartRef, iter_rows, location, read_part, reject
from synth.text import lang_mismatch

PairScorer = Callable[[list[dict[str, Any]]], list[tuple[float, list[float]]]]
"""Scores of retrieval rows: (query-positive cosine, query-negative cosines) for each row, via the embedder."""


@dataclass
class FilterState:
    """What `prepare` decided for the whole dataset, keyed by (part key, row index)."""

    scores: dict[str, list[tuple[float | None, list[float] | None]]] = field(default_factory=dict)
    drops: dict[tuple[str, int], tuple[str, str]] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    before: dict[str, list[float]] = field(default_factory=lambda: {"positive": [], "negative": []})


def needs_scores(row: dict[str, Any]) -> bool:
    negatives = row.get("negatives") or []
    scores = row.get("negative_scores")
    return row.get("positive_score") is None or (bool(negatives) and (scores is None or len(scores) != len(negatives)))


class FilterStage(Stage):
    """Drop records and negatives that fail the configured rules; every drop goes to `_rejects/` with its rule."""

    name = "filter"
    holds_model = True

    def __init__(
        self, options: dict[str, Any], scorer: PairScorer | None = None, judge: LLMJudge | None = None,
        vectors: VectorFn | None = None, embedder: LazyEmbedder | None = None,
    ):
        self.options = options
        self.scorer = scorer
        self.judge = judge
        self.vectors = vectors
        self.embedder = embedder
        """The embedder behind `scorer` and `vectors`, for its per-endpoint usage."""
        self.state = FilterState()
        self.prepared = False

    def config(self) -> dict[str, Any]:
        skip = {"inputs", "out", "api_key", "base_url", "embed_base_url", "concurrency", "rpm", "tpm", "timeout",
                "max_attempts", "embed_batch_size", "embed_cache"}  # where, how fast
        if self.judge is None:  # without the judge, LLM settings decide nothing
            skip |= {*LLM_OPTION_DEFAULTS, "prompts"}
        # `audit` and `audit_*`: the audit measures the kept data and changes none of it
        return {k: v for k, v in sorted(self.options.items()) if k not in skip and not k.startswith("audit")}

    def setting(self, name: str, row: dict[str, Any]) -> Any:
        return setting_for(self.options[name], row["task"], row["origin"])

    def uses_scores(self, row: dict[str, Any]) -> bool:
        return row["task"] == Task.RETRIEVAL and any(
            self.setting(rule, row) is not None
            for rule in ("min_score", "false_negative_margin", "relative_margin")
        )

    # -- global pass -----------------------------------------------------------------------------------------
    def prepare(self, parts: list[PartRef]) -> None:
        """Scores (computed where missing), percentile thresholds, then record verdicts and duplicates."""
        self.state = FilterState()
        for part in parts:
            self.state.scores[part.key] = self.part_scores(read_part(part).to_pylist())
        self.resolve_thresholds(parts)
        dedup = DuplicateFinder(self.options, self.vectors)
        for part in parts:
            rows = read_part(part).to_pylist()
            dedup.prefetch(rows)
            for index, row in enumerate(rows):
                row = self.with_scores(part.key, index, row)
                verdict = self.record_verdict(row) or dedup.check(row, location(part, index, row["id"]))
                if verdict:
                    self.state.drops[(part.key, index)] = verdict
        self.prepared = True

    def part_scores(self, rows: list[dict[str, Any]]) -> list[tuple[float | None, list[float] | None]]:
        """Every row's scores, asking the scorer only for rows that need them and lack them."""
        scores = [(row.get("positive_score"), row.get("negative_scores")) for row in rows]
        missing = [i for i, row in enumerate(rows) if self.uses_scores(row) and needs_scores(row)]
        if missing and self.scorer is not None:
            for i, computed in zip(missing, self.scorer([rows[i] for i in missing]), strict=True):
                scores[i] = computed
        for (positive, negatives), row in zip(scores, rows, strict=True):
            if row["task"] == Task.RETRIEVAL:
                self.state.before["positive"].append(positive)
                self.state.before["negative"].extend(negatives or [])
        return scores

    def with_scores(self, key: str, index: int, row: dict[str, Any]) -> dict[str, Any]:
        if row["task"] == Task.RETRIEVAL:
            positive, negatives = self.state.scores[key][index]
            row = {**row, "positive_score": positive, "negative_scores": negatives}
        return row

    def resolve_thresholds(self, parts: list[PartRef]) -> None:
        """Per origin, the cosine a `min_score` setting means (percentiles over that origin's own scores)."""
        by_origin: dict[str, list[float]] = {}
        for part in parts:
            if part.task != Task.RETRIEVAL:
                continue
            origins = read_part(part).column("origin").to_pylist()
            for origin, (positive, _) in zip(origins, self.state.scores[part.key], strict=True):
                if positive is not None:
                    by_origin.setdefault(origin, []).append(positive)
        for origin, scores in by_origin.items():
            value = setting_for(self.options["min_score"], Task.RETRIEVAL.value, origin)
            if value is not None:
                self.state.thresholds[origin] = resolve_threshold(value, scores)

    def record_verdict(self, row: dict[str, Any]) -> tuple[str, str] | None:
        """The first record-level rule `row` fails, as (rule, reason)."""
        bounds = (self.setting("max_query_tokens", row), self.setting("max_passage_tokens", row))
        reason = length_violation(row, *bounds)
        if reason:
            return "too_long", reason
        if self.setting("check_lang", row):
            reason = language_violation(row)
            if reason:
                return "lang_mismatch", reason
        if row["task"] == Task.RETRIEVAL and row["origin"] in self.state.thresholds:
            reason = below_threshold(row["positive_score"], self.state.thresholds[row["origin"]])
            if reason:
                return "min_score", reason
        return None

    # -- per part ---------------------------------------------------------------------------------------------
    def process(self, part: PartRef, table: pa.Table) -> PartResult:
        rows, rejects = [], []
        survivors: list[tuple[int, dict[str, Any]]] = []
        for index, row in enumerate(table.to_pylist()):
            row = self.with_scores(part.key, index, row)
            drop = self.state.drops.get((part.key, index))
            if drop:
                rejects.append(reject(self.name, location(part, index, row["id"]), drop[0], drop[1], row))
            else:
                survivors.append((index, row))
        usage_before = self.judge.usage() if self.judge else None
        verdicts = self.judge_verdicts([row for _, row in survivors])
        negatives_dropped = failed = 0
        for (index, row), verdict in zip(survivors, verdicts, strict=True):
            if verdict is not None and verdict.failed:
                failed += 1
                continue
            if verdict is not None and not verdict.keep:
                rejects.append(reject(self.name, location(part, index, row["id"]), "judge", verdict.reason, row))
                continue
            kept, dropped = self.filter_negatives(row, part, index)
            rows.append(kept)
            rejects += dropped
            negatives_dropped += len(dropped)
        stats: dict[str, Any] = {"records_kept": len(rows), "records_dropped": len(rejects) - negatives_dropped,
                                 "negatives_dropped": negatives_dropped}
        if self.judge:
            stats.update(as_part_stats(self.judge.usage(since=usage_before)))
        return PartResult(rows=rows, rejects=rejects, stats=stats, failed=failed)

    def judge_verdicts(self, rows: list[dict[str, Any]]) -> list[Verdict | None]:
        """The judge's verdict for rows it is switched on for (None for the others)."""
        judged = [i for i, row in enumerate(rows) if row["task"] == Task.RETRIEVAL and self.setting("judge", row)]
        verdicts: list[Verdict | None] = [None] * len(rows)
        if judged and self.judge is not None:
            for i, verdict in zip(judged, self.judge([rows[i] for i in judged]), strict=True):
                verdicts[i] = verdict
        return verdicts

    def filter_negatives(
        self, row: dict[str, Any], part: PartRef, index: int
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Row `index` of `part` with failing negatives removed (scores, teacher scores and origins kept aligned), and
        their rejects."""
        negatives = row.get("negatives") or []
        if row["task"] != Task.RETRIEVAL or not negatives:
            return row, []
        scores = row.get("negative_scores") or [None] * len(negatives)
        origins = negative_origins(row)
        keep, rejects = [], []
        for i, (text, score, origin) in enumerate(zip(negatives, scores, origins, strict=True)):
            failure = self.negative_failure(row, text, score, origin)
            if failure:
                record = {"id": row["id"], "query": row["query"], "negative": text, "score": score, "origin": origin}
                where = location(part, index, row["id"], negative=i)
                rejects.append(reject(self.name, where, failure[0], failure[1], record, kind="negative"))
            else:
                keep.append(i)
        kept = {
            **row,
            "negatives": [negatives[i] for i in keep],
            "negative_scores": [scores[i] for i in keep] if row.get("negative_scores") is not None else None,
            "negative_origins": [origins[i] for i in keep] if row.get("negative_origins") else [],
        }
        if row.get("negative_teacher_scores") is not None:
            kept["negative_teacher_scores"] = [row["negative_teacher_scores"][i] for i in keep]
        return kept, rejects

    def negative_failure(
        self, row: dict[str, Any], text: str, score: float | None, origin: str
    ) -> tuple[str, str] | None:
        reason = too_long(text, self.setting("max_passage_tokens", row))
        if reason:
            return "too_long", f"negative: {reason}"
        if self.setting("check_lang", row):
            reason = lang_mismatch(text, row["lang"])
            if reason:
                return "lang_mismatch", f"negative: {reason}"
        margin = self.setting("false_negative_margin", row)
        reason = false_negative(score, row["positive_score"], float(margin)) if margin is not None else None
        if reason:
            return "false_negative", reason
        relative = self.setting("relative_margin", row)
        if origin == "llm" and relative is not None:
            reason = over_relative_margin(score, row["positive_score"], float(relative))
            if reason:
                return "llm_negative_margin", reason
        return None

    def close(self) -> None:
        if self.judge:
            self.judge.close()
        if self.embedder is not None:
            self.embedder.close()

    def finish(self, out: Path) -> dict[str, Any]:
        """Score distributions before and after, and the resolved thresholds, beside the per-part entries."""
        if not self.prepared:
            return {}
        after: dict[str, list[float]] = {"positive": [], "negative": []}
        for row in iter_rows(out, Task.RETRIEVAL):
            after["positive"].append(row["positive_score"])
            after["negative"].extend(row["negative_scores"] or [])
        return {
            "score_distributions": {
                kind: {"before": summarise(self.state.before[kind]), "after": summarise(after[kind])}
                for kind in ("positive", "negative")
            },
            "thresholds": {k: round(v, 4) for k, v in sorted(self.state.thresholds.items())},
        }

    def endpoint_usage(self) -> dict[str, Any]:
        """The judge's and an API embedder's per-endpoint usage in this process."""
        return endpoint_stats.fold([self.judge.endpoint_usage() if self.judge and self.judge.used() else {},
                                    self.embedder.endpoint_usage() if self.embedder else {}])
