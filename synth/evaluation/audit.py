"""The false-negative audit: how many mined negatives answer their query as well as the positive, by closeness.

Mined negatives are bucketed by their score ratio to the positive (negative cosine / positive cosine), a seeded
sample is drawn from every bucket, and an LLM judge compares each sampled negative with its positive: which of the
two passages answers the query better, or both equally. It reads every pair twice, positive first and negative
first, and a negative is a false one only when both readings say it answers as well as the positive: a judge that
prefers a position rather than a passage then cannot invent false negatives, and the share of pairs whose verdict
flips with the order measures how far the judge can be trusted. Each bucket's share of false negatives gets a Wilson
95% interval; the share among the negatives a relative margin keeps is the bucket shares weighted by bucket size
(stratified estimate). A relative margin r keeps a negative when its ratio is below 1 - r, so bucket edges are
margins.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from synth.llm import ChatRequest, ChatResult, LLMEngine, LLMSettings
from synth.prompts import PromptLibrary
from synth.schema import Task
from synth.store import iter_rows

TECHNIQUE = "audit"
EDGES = (0.80, 0.85, 0.90, 0.95, 1.00)
"""Ratio edges of the buckets: below 0.80, [0.80, 0.85), ..., [0.95, 1.00), 1.00 and above."""
MARGINS: tuple[float | None, ...] = (None, 0.0, 0.05, 0.10, 0.15, 0.20)
"""Relative margins the audit can judge, loosest first (None: no margin); each keeps the buckets below 1 - r."""
Z95 = 1.959964


ORDERS = ("positive first", "negative first")
"""The two readings of every sampled pair, in the order they are asked and recorded."""


class AuditAnswer(BaseModel):
    """What the judge answers for one query and two passages, in the order they were shown."""

    better: Literal["first", "second", "equal"] = Field(
        description="the passage that answers the query better, or equal when both answer it equally well")
    reason: str = Field(description="one sentence explaining the decision")


def verdict(answer: AuditAnswer, negative_first: bool) -> str:
    """The judge's answer in terms of the passages: "positive", "negative" or "equal"."""
    if answer.better == "equal":
        return "equal"
    return "negative" if (answer.better == "first") == negative_first else "positive"


@dataclass
class Sampled:
    """One sampled negative, where it came from, and the judge's verdict once asked."""

    query: str
    positive: str
    negative: str
    positive_score: float
    negative_score: float
    bucket: int
    lang: str = "en"
    verdicts: list[str | None] = field(default_factory=list)
    """The judge's verdict per reading (ORDERS): the better passage, or "equal"; None where it gave no answer."""
    reasons: list[str] = field(default_factory=list)
    false_negative: bool | None = None
    """Both readings say the negative answers as well as the positive (None: a reading has no answer)."""
    flipped: bool | None = None
    """The two readings disagree on whether the negative is a false one (the judge followed the order)."""

    def judged(self, verdicts: list[str | None], reasons: list[str]) -> None:
        """Record the readings' verdicts and what they make of the negative."""
        self.verdicts, self.reasons = verdicts, reasons
        if None in verdicts:
            return
        calls = [v != "positive" for v in verdicts]
        self.false_negative, self.flipped = all(calls), len(set(calls)) > 1


@dataclass
class Population:
    """Every audited negative's bucket (counts), and the negatives themselves per bucket, in input order."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(EDGES) + 1))
    members: list[list[Sampled]] = field(default_factory=lambda: [[] for _ in range(len(EDGES) + 1)])
    unscored: int = 0
    """Negatives without a score or whose positive scores 0 or less (no ratio)."""


def bucket_of(ratio: float) -> int:
    """Index of the bucket holding `ratio` (0: below the first edge)."""
    return sum(ratio >= edge for edge in EDGES)


def bucket_label(index: int) -> str:
    if index == 0:
        return f"< {EDGES[0]:.2f}"
    if index == len(EDGES):
        return f">= {EDGES[-1]:.2f}"
    return f"{EDGES[index - 1]:.2f}-{EDGES[index]:.2f}"


def kept_buckets(margin: float | None) -> int:
    """How many buckets (from the lowest ratio) a relative margin keeps: ratio < 1 - margin."""
    return len(EDGES) + 1 if margin is None else sum(edge <= 1.0 - margin + 1e-9 for edge in EDGES)


def collect(directory: Path, origins: list[str]) -> Population:
    """Every negative of `origins` in the retrieval records of a stage directory, by bucket."""
    population = Population()
    for row in iter_rows(directory, Task.RETRIEVAL):
        scores = row.get("negative_scores") or []
        origin_of = row.get("negative_origins") or []
        for index, negative in enumerate(row.get("negatives") or []):
            if index < len(origin_of) and origin_of[index] not in origins:
                continue
            positive = row.get("positive_score")
            if index >= len(scores) or scores[index] is None or positive is None or positive <= 0:
                population.unscored += 1
                continue
            bucket = bucket_of(scores[index] / positive)
            population.counts[bucket] += 1
            population.members[bucket].append(Sampled(row["query"], row["positive"], negative, positive,
                                                      scores[index], bucket, row.get("lang") or "en"))
    return population


def draw(population: Population, per_bucket: int, seed: int) -> list[Sampled]:
    """A seeded sample of up to `per_bucket` negatives from every bucket (a bucket's own generator: adding a bucket
    or changing another's size leaves its sample as it was)."""
    sample: list[Sampled] = []
    for bucket, members in enumerate(population.members):
        chosen = random.Random(f"{seed}/{bucket}").sample(range(len(members)), min(per_bucket, len(members)))
        sample += [members[i] for i in sorted(chosen)]
    return sample


def wilson(hits: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion (sound at 0 or n hits, unlike the normal approximation)."""
    if n == 0:
        return (0.0, 1.0)
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def estimate(population: Population, sample: list[Sampled], target: float,
             max_inconsistency: float = 1.0) -> dict[str, Any]:
    """Per-bucket shares with Wilson intervals, the stratified share each margin keeps, the judge's position
    inconsistency, and the suggested margin (none from a judge whose verdicts flip with the order more often than
    `max_inconsistency`: its verdicts measure the order, not the passages)."""
    judged = [s for s in sample if s.false_negative is not None]
    buckets = []
    for index, count in enumerate(population.counts):
        mine = [s for s in judged if s.bucket == index]
        hits = sum(bool(s.false_negative) for s in mine)
        low, high = wilson(hits, len(mine))
        buckets.append({"bucket": bucket_label(index), "negatives": count, "judged": len(mine),
                        "false_negatives": hits, "share": hits / len(mine) if mine else None,
                        "low": low, "high": high, "flipped": sum(bool(s.flipped) for s in mine)})
    margins = []
    for margin in MARGINS:
        kept = [b for b in buckets[:kept_buckets(margin)] if b["negatives"]]
        measured = [b for b in kept if b["judged"]]
        total = sum(b["negatives"] for b in measured)
        share = sum(b["negatives"] * b["share"] for b in measured) / total if total else None
        variance = sum((b["negatives"] / total) ** 2 * b["share"] * (1 - b["share"]) / b["judged"]
                       for b in measured) if total else 0.0
        margins.append({"relative_margin": margin, "negatives_kept": sum(b["negatives"] for b in kept),
                        "share": share, "high": None if share is None else min(1.0, share + Z95 * variance ** 0.5)})
    flipped = sum(bool(s.flipped) for s in judged)
    inconsistency = flipped / len(judged) if judged else None
    reliable = inconsistency is None or inconsistency <= max_inconsistency  # nothing judged: no margin passes
    passing = [m for m in margins if m["share"] is not None and m["share"] <= target] if reliable else []
    return {"buckets": buckets, "margins": margins, "target": target,
            "suggested_relative_margin": passing[0]["relative_margin"] if passing else None,
            "target_met": bool(passing), "judged": len(judged), "failed": len(sample) - len(judged),
            "flipped": flipped, "position_inconsistency": inconsistency, "max_inconsistency": max_inconsistency,
            "judge_reliable": reliable}


def reading(result: ChatResult, negative_first: bool) -> tuple[str | None, str]:
    """One reading's verdict and reason (no verdict, and the error, when the judge gave no valid answer)."""
    if result.ok and isinstance(result.parsed, AuditAnswer):
        return verdict(result.parsed, negative_first), result.parsed.reason
    return None, result.error or "no answer"


class AuditPrompt:
    """The audit's request for a sampled negative: what a run sends and what `--estimate` counts."""

    def __init__(self, options: dict[str, Any]):
        self.library = PromptLibrary(options.get("prompts"))
        self.schema = json.dumps(AuditAnswer.model_json_schema(), ensure_ascii=False)
        self.library.check(TECHNIQUE, TECHNIQUE, {"query": "q", "first": "a", "second": "b",
                                                  "output_schema": self.schema})

    def render(self, sampled: Sampled, negative_first: bool) -> str:
        first, second = (sampled.negative, sampled.positive) if negative_first else (sampled.positive,
                                                                                     sampled.negative)
        return self.library.for_lang(TECHNIQUE, sampled.lang).render(
            query=sampled.query, first=first, second=second, output_schema=self.schema)

    def renders(self, sampled: Sampled) -> list[str]:
        """The prompts of both readings, in ORDERS order."""
        return [self.render(sampled, order == "negative first") for order in ORDERS]


class AuditJudge:
    """Asks the judge about sampled negatives through the shared engine; answers are journaled, so a rerun with the
    same sample sends nothing."""

    def __init__(self, options: dict[str, Any], settings: LLMSettings, journal: Path):
        self.prompt = AuditPrompt(options)
        self.engine = LLMEngine(settings, journal=journal, stage=TECHNIQUE)

    def __call__(self, sample: list[Sampled]) -> None:
        requests = [ChatRequest([{"role": "user", "content": prompt}], response_model=AuditAnswer)
                    for s in sample for prompt in self.prompt.renders(s)]
        results = self.engine.chat_many(requests)
        for index, item in enumerate(sample):
            pair = results[len(ORDERS) * index : len(ORDERS) * (index + 1)]
            readings = [reading(result, order == "negative first") for order, result in zip(ORDERS, pair, strict=True)]
            item.judged([v for v, _ in readings], [r for _, r in readings])

    def usage(self) -> dict[str, int | float]:
        return self.engine.stats()

    def close(self) -> None:
        self.engine.close()
