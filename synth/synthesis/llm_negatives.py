"""LLM hard negatives (QZhou): N passages per (query, positive) in the positive's style and length that are worse
in one of three named ways; appended to the record's `negatives` with `negative_origins = llm`."""

from __future__ import annotations

import json
from typing import Any

from synth.registry import Option
from synth.schema import Task, negative_origins
from synth.synthesis.base import Synthesised, SynthesisStage, merged_meta
from synth.synthesis.checks import (
    Failure,
    check_distinct,
    check_language,
    check_length,
    check_near_duplicate,
    check_no_new_markup,
    check_nonempty,
)
from synth.synthesis.generation import Job
from synth.synthesis.outputs import NEGATIVE_KINDS, NegativesOutput, schema_json
from synth.synthesis.spec import band, synthesis_spec
from synth.synthesis.text import Measured

BANDS: tuple[Option, ...] = (
    band("length_tolerance", 0.20, "Negative length within +-this share of the positive."),
    band("min_change", 0.20, "A negative changes more than this share of the positive."),
)
"""docs/method.md: length within +-20% of the positive; ours: a negative changes more than 20% of the positive."""


class NegativesStage(SynthesisStage):
    name = "llm-negatives"
    techniques = ("llm_negatives",)
    output_kind = "negative"

    def technique_config(self) -> dict[str, Any]:
        return {o.key: float(self.options[o.key]) for o in BANDS}

    def sample_context(self, technique: str) -> dict[str, Any]:
        return {"lang": "en", "query": "q", "positive": "p", "num": 2, "avoid": ["{}"], "kinds": NEGATIVE_KINDS,
                "length_tolerance": float(self.options["length_tolerance"]),
                "output_schema": schema_json(NegativesOutput)}

    def check(self, job: Job, item: Any) -> Failure | None:
        positive: Measured = job.measured["positive"]
        passage = Measured(item.passage)  # measured once for all the checks below
        band = float(self.options["min_change"])
        return (check_nonempty(passage, "negative") or check_no_new_markup(positive, passage)
                or check_language(job.context["lang"], passage, positive)
                or check_length(positive, passage, float(self.options["length_tolerance"]))
                or check_distinct(passage, positive, band, "negative_equals_positive", "the positive")
                or check_near_duplicate(passage, [*job.measured["existing"],
                                                  *job.measured_kept(lambda k: k.passage)], band))

    def synthesise(self, task: Task, rows: list[dict[str, Any]]) -> Synthesised:
        if task != Task.RETRIEVAL:
            return Synthesised.not_applicable(rows)
        jobs = [
            Job(index, self.library.for_lang("llm_negatives", row["lang"]),
                {"lang": row["lang"], "query": row["query"], "positive": row["positive"], "kinds": NEGATIVE_KINDS,
                 "existing": list(row.get("negatives") or []),
                 "length_tolerance": float(self.options["length_tolerance"]),
                 "output_schema": schema_json(NegativesOutput)},
                NegativesOutput, self.num,
                # What every output is compared with, measured once per record (on first use) for all outputs.
                measured={"positive": Measured(row["positive"]),
                          "existing": [Measured(n) for n in row.get("negatives") or []]})
            for index, row in enumerate(rows)
        ]
        rejected, stats = self.generate(jobs, lambda job, parsed: parsed.negatives, self.check)
        result = Synthesised(rejected=rejected, stats=stats.as_dict(), failed=stats.failed)
        for kind in NEGATIVE_KINDS:
            result.stats[f"kept_{kind}"] = sum(1 for j in jobs for k in j.kept if k.kind == kind)
        for job in jobs:
            if job.kept:
                result.replaced[job.index] = self.with_negatives(rows[job.index], job)
        return result

    def with_negatives(self, row: dict[str, Any], job: Job) -> dict[str, Any]:
        """The record with the kept negatives appended; the scores and teacher scores of the negatives are reset
        because the list changed (the filter re-scores; no teacher scored the new ones, so no margins are exported)."""
        earlier = json.loads(row.get("meta") or "{}").get("llm_negatives", [])
        meta = merged_meta(row, {"llm_negatives": [*earlier, *(
            {"kind": k.kind, "template": job.template.name, "template_sha": job.template.sha} for k in job.kept
        )]})
        negatives = list(row.get("negatives") or [])
        return {**row, "negatives": [*negatives, *(k.passage for k in job.kept)],
                "negative_origins": [*negative_origins(row), *(["llm"] * len(job.kept))], "negative_scores": None,
                "negative_teacher_scores": None, "meta": meta}


LLM_NEGATIVES = synthesis_spec(NegativesStage, "Write hard negatives that deviate in meaning, add irrelevant detail "
                               "or answer another aspect.", BANDS)
