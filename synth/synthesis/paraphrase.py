"""Paraphrase (QZhou): N rewrites per record that keep meaning, style, language and length but change the wording.

Retrieval records get (query', positive'), STS records (text_a', text_b') with the score kept, CLS records a new
text of the same class. Outputs too close to the source or to each other are dropped and regenerated.
"""

from __future__ import annotations

from typing import Any

from synth.registry import Option
from synth.schema import Task
from synth.synthesis.base import Synthesised, SynthesisStage
from synth.synthesis.checks import (
    Failure,
    change_band,
    check_adjacent_copy,
    check_changed,
    check_language,
    check_length,
    check_near_duplicate,
    check_no_new_markup,
    check_nonempty,
)
from synth.synthesis.generation import Job
from synth.synthesis.outputs import paraphrase_output, schema_json
from synth.synthesis.spec import DROP_SOURCE, band, synthesis_spec
from synth.synthesis.text import Measured
from synth.tasks import TASKS

BANDS: tuple[Option, ...] = (
    band("sentence_change", 0.30, "A one-sentence rewrite changes more than this share."),
    band("paragraph_change", 0.20, "A paragraph rewrite changes more than this share."),
    band("length_tolerance", 0.15, "Rewrite length within +-this share of the source."),
)
"""docs/method.md: more than 30% of a sentence / 20% of a paragraph changed, length within +-15%."""


class ParaphraseStage(SynthesisStage):
    name = "paraphrase"
    techniques = ("paraphrase",)

    def technique_config(self) -> dict[str, Any]:
        return self.bands()

    def bands(self) -> dict[str, float]:
        return {o.key: float(self.options[o.key]) for o in BANDS}

    def sample_context(self, technique: str) -> dict[str, Any]:
        fields = TASKS[Task.RETRIEVAL].rewritten_fields
        return {"task": "retrieval", "lang": "en", "label": "sample", "num": 2, "avoid": ["{}"],
                "fields": [{"name": f, "text": "sample text"} for f in fields],
                "output_schema": schema_json(paraphrase_output(fields)), **self.bands()}

    def check(self, job: Job, item: Any) -> Failure | None:
        """Every field must be non-empty, same script, changed enough, in the length band, no copied sentences."""
        bands = job.context  # the bands are template variables too
        sources: dict[str, Measured] = job.measured
        for name, original in sources.items():
            text = Measured(getattr(item, name))  # measured once for all the checks below
            failure = (check_nonempty(text, name) or check_no_new_markup(original, text)
                       or check_language(job.context["lang"], text, original)
                       or check_changed(original, text, self.needed_change(original, bands))
                       or check_length(original, text, bands["length_tolerance"])
                       or check_adjacent_copy(original, text))
            if failure:
                return Failure(failure.rule, f"{name}: {failure.reason}")
        if not job.kept:  # the first output has nothing to duplicate: its band is not measured
            return None
        joined = Measured("\n".join(getattr(item, n) for n in sources))
        kept = job.measured_kept(lambda k: "\n".join(getattr(k, n) for n in sources))
        return check_near_duplicate(joined, kept, self.needed_change(joined, bands))

    @staticmethod
    def needed_change(text: Measured, bands: dict[str, Any]) -> float:
        """How much of `text` a rewrite must change (`change_band` with the stage's bands)."""
        return change_band(text, bands["sentence_change"], bands["paragraph_change"])

    def synthesise(self, task: Task, rows: list[dict[str, Any]]) -> Synthesised:
        fields = TASKS[task].rewritten_fields
        if not fields:  # passages: what is rewritten is the queries made of them
            return Synthesised.not_applicable(rows)
        model = paraphrase_output(fields)
        shared = {"task": task.value, "output_schema": schema_json(model), **self.bands()}
        jobs = []
        for index, row in enumerate(rows):
            template = self.library.for_lang("paraphrase", row["lang"])
            context = {**shared, "lang": row["lang"], "label": row.get("label"),
                       "fields": [{"name": f, "text": row[f]} for f in fields]}
            # The checks measure each source field once, on its first output, not once per output and try.
            jobs.append(Job(index, template, context, model, self.num, measured={f: Measured(row[f]) for f in fields}))
        return self.new_rows(task, rows, jobs, lambda job, parsed: parsed.items, self.check)

    def fields_of(self, task: Task, parent: dict[str, Any], item: Any) -> dict[str, Any]:
        """The new row's fields: rewritten texts plus what still holds for them (score, label, class texts)."""
        texts = item.model_dump()
        if task == Task.STS:
            return {**texts, "score": parent["score"], "label": parent.get("label")}
        if task == Task.CLS:
            return {**texts, "label": parent["label"], "positive": parent.get("positive"),
                    "negatives": parent.get("negatives") or []}
        return texts


PARAPHRASE = synthesis_spec(ParaphraseStage, "Paraphrase records: retrieval (query, positive), STS (text_a, text_b) "
                            "and CLS texts.", (DROP_SOURCE, *BANDS))
