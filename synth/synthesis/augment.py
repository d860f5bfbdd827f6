"""Augmentation (QZhou): N topic-shifted (query, positive, hard negative) triples per retrieval record, or N new
examples of a class per CLS record. A rewrite that does not move the topic is rejected by a check, not only told
not to happen: lexical overlap with the source must stay under a bound and, with an embedder, the cosine to the
source must sit in a band (above it is a rewrite, below it left the field).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from synth.embed.estimate import CountingEmbedder
from synth.llm import LLMSettings
from synth.registry import Option
from synth.schema import Task
from synth.synthesis.base import Synthesised, SynthesisStage
from synth.synthesis.checks import (
    Failure,
    check_changed,
    check_distinct,
    check_language,
    check_length,
    check_near_duplicate,
    check_no_new_markup,
    check_nonempty,
    check_similarity_band,
    check_topic_shift,
)
from synth.synthesis.generation import Job, Verdict
from synth.synthesis.outputs import AugmentClsOutput, AugmentOutput, schema_json
from synth.synthesis.similarity import OPTIONAL_EMBED_OPTIONS, TextSimilarity, embed_config, embedder_configured
from synth.synthesis.spec import DROP_SOURCE, band, synthesis_spec
from synth.synthesis.text import Measured

BANDS: tuple[Option, ...] = (
    band("length_tolerance", 0.20, "New query/passages within +-this share of the originals."),
    band("min_change", 0.30, "The new query changes more than this share of the old one."),
    band("max_topic_overlap", 0.50, "At most this share of content words shared with the source."),
    band("min_topic_similarity", 0.30, "With an embedder: cosine to the source at least this."),
    band("max_topic_similarity", 0.90, "With an embedder: cosine to the source at most this."),
)
"""docs/method.md: +-20% lengths. Ours: the new query changes >30% of the old one, content-word overlap <= 50%,
embedding cosine to the source in [0.30, 0.90] when an embedder is configured."""

TECHNIQUE = {Task.RETRIEVAL: "augment", Task.CLS: "augment_cls"}


def joined(query: str, positive: str) -> str:
    """A triple's query and positive as one text: what the topic checks compare with the source's."""
    return f"{query}\n{positive}"


class AugmentStage(SynthesisStage):
    name = "augment"
    techniques = ("augment", "augment_cls")

    def __init__(self, options: dict[str, Any], settings: LLMSettings):
        super().__init__(options, settings)
        self.similarity = TextSimilarity(options) if embedder_configured(options) else None

    def technique_config(self) -> dict[str, Any]:
        bounds = {o.key: float(self.options[o.key]) for o in BANDS}
        return {**bounds, **embed_config(self.options)}

    def sample_context(self, technique: str) -> dict[str, Any]:
        model = AugmentOutput if technique == "augment" else AugmentClsOutput
        return {"lang": "en", "query": "q", "positive": "p", "text": "t", "label": "l", "num": 2, "avoid": ["{}"],
                "length_tolerance": float(self.options["length_tolerance"]), "output_schema": schema_json(model)}

    def topic_failure(self, source: Measured, output: Measured,
                      then: Callable[[], Failure | None]) -> Verdict:
        """Lexical overlap bound always; embedding similarity band when an embedder is configured; `then` (the
        checks after the topic's) once both passed. Without an embedder it all runs at once (the default path, as
        fast as before); with one, the band is awaited (`banded`), so the check is an awaitable."""
        failure = check_topic_shift(source, output, float(self.options["max_topic_overlap"]))
        if failure:
            return failure
        if self.similarity is None:
            return then()
        return self.banded(self.similarity, source, output, then)

    async def banded(self, similarity: TextSimilarity, source: Measured, output: Measured,
                     then: Callable[[], Failure | None]) -> Failure | None:
        """The cosine band, embedded off the loop (`TextSimilarity.apairwise`), then `then`."""
        cosine = float((await similarity.apairwise([source.text], [output.text]))[0])
        return check_similarity_band(cosine, float(self.options["min_topic_similarity"]),
                                     float(self.options["max_topic_similarity"])) or then()

    def check_triple(self, job: Job, item: Any) -> Verdict:
        query, positive, source = (job.measured[k] for k in ("query", "positive", "source"))
        tolerance = float(self.options["length_tolerance"])
        lang = job.context["lang"]
        # Each output measured once for all the checks below.
        new_query, new_positive, negative = Measured(item.query), Measured(item.positive), Measured(item.negative)
        for name, text, reference in (("query", new_query, query), ("positive", new_positive, positive),
                                      ("negative", negative, positive)):
            failure = (check_nonempty(text, name) or check_no_new_markup(reference, text)
                       or check_language(lang, text, source)
                       or check_length(reference, text, tolerance))
            if failure:
                return Failure(failure.rule, f"{name}: {failure.reason}")
        topic = Measured(joined(item.query, item.positive))
        return (check_changed(query, new_query, float(self.options["min_change"]))
                or self.topic_failure(source, topic, lambda: (
                    check_distinct(negative, new_positive, float(self.options["min_change"]),
                                   "negative_equals_positive", "the new positive")
                    or check_near_duplicate(topic, job.measured_kept(lambda k: joined(k.query, k.positive)),
                                            float(self.options["min_change"])))))

    def check_example(self, job: Job, item: Any) -> Verdict:
        text, output = job.measured["text"], Measured(item.text)
        return (check_nonempty(output, "text") or check_no_new_markup(text, output)
                or check_language(job.context["lang"], output, text)
                or check_length(text, output, float(self.options["length_tolerance"]))
                or check_changed(text, output, float(self.options["min_change"]))
                or self.topic_failure(text, output, lambda: check_near_duplicate(
                    output, job.measured_kept(lambda k: k.text), float(self.options["min_change"]))))

    def embedded_for_answer(self, job: Job, answer: Any, embedder: CountingEmbedder) -> None:
        """The topic band embeds the record's source at its first output, then each output that reaches it (new
        text) in a call of its own."""
        if "source" in job.measured:
            source, outputs = job.measured["source"], [joined(item["query"], item["positive"]) for item in answer]
        else:
            source, outputs = job.measured["text"], [item["text"] for item in answer]
        embedder.encode_each([source.text])
        embedder.encode_each(outputs, new=True)

    def synthesise(self, task: Task, rows: list[dict[str, Any]]) -> Synthesised:
        if task not in TECHNIQUE:
            return Synthesised.not_applicable(rows)
        technique = TECHNIQUE[task]
        model = AugmentOutput if task == Task.RETRIEVAL else AugmentClsOutput
        jobs = []
        for index, row in enumerate(rows):
            context = {"lang": row["lang"], "length_tolerance": float(self.options["length_tolerance"]),
                       "output_schema": schema_json(model)}
            # What the outputs are compared with, measured once per record (on first use) for all of them.
            if task == Task.RETRIEVAL:
                context.update(query=row["query"], positive=row["positive"])
                measured = {"query": Measured(row["query"]), "positive": Measured(row["positive"]),
                            "source": Measured(joined(row["query"], row["positive"]))}
            else:
                context.update(text=row["text"], label=row["label"])
                measured = {"text": Measured(row["text"])}
            jobs.append(Job(index, self.library.for_lang(technique, row["lang"]), context, model, self.num,
                            measured=measured))
        check = self.check_triple if task == Task.RETRIEVAL else self.check_example
        return self.new_rows(task, rows, jobs, lambda job, parsed: parsed.items, check)

    def fields_of(self, task: Task, parent: dict[str, Any], item: Any) -> dict[str, Any]:
        if task == Task.RETRIEVAL:
            return {"query": item.query, "positive": item.positive, "negatives": [item.negative],
                    "negative_origins": ["llm"]}
        # The source text is another example of the same class: the new example's positive.
        return {"text": item.text, "label": parent["label"], "positive": parent["text"],
                "negatives": parent.get("negatives") or []}


AUGMENT = synthesis_spec(AugmentStage, "Extend records to neighbouring topics: retrieval triples and new CLS examples "
                         "(STS passes through).", (DROP_SOURCE, *BANDS, *OPTIONAL_EMBED_OPTIONS))
