"""Persona-driven query generation (Qwen3-Embedding): document to query in two LLM calls per query.

1. Configuration: the passage and its top-k personas (embedding or lexical similarity); the model picks the
   character who would ask a question of the sampled type and difficulty.
2. Query: from that character's view, a query of the sampled type, difficulty, length and language that
   retrieves the passage.
Question type, difficulty, length and language are drawn from configurable distributions with a seed; the paper
lets the model pick type and difficulty, synth samples them so the mix is controlled and a run is reproducible.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synth.llm import LLMSettings
from synth.registry import Option
from synth.schema import Task
from synth.store import PartRef, file_fingerprint
from synth.synthesis.base import Synthesised, SynthesisStage
from synth.synthesis.checks import (
    Failure,
    check_distinct,
    check_language,
    check_no_new_markup,
    check_nonempty,
    check_not_copied,
    check_word_count,
)
from synth.synthesis.generation import Job, RoundStats
from synth.synthesis.outputs import GeneratedQuery, QueryConfig, schema_json
from synth.synthesis.personas import PersonaIndex, default_personas_path, load_personas, match_persona
from synth.synthesis.sampling import DIFFICULTIES, QUESTION_TYPES, SAME_LANGUAGE, RequirementSampler, language_name
from synth.synthesis.similarity import OPTIONAL_EMBED_OPTIONS, TextSimilarity, embed_config, embedder_configured
from synth.synthesis.spec import DROP_SOURCE, NUM, PANEL, band, synthesis_spec
from synth.synthesis.text import Measured, Text, tokens

OPTIONS: tuple[Option, ...] = (
    DROP_SOURCE,
    Option("personas", Path, None, "Persona pool (JSONL with a `persona` field).", default_text="the shipped sample",
           panel=PANEL),
    Option("top_personas", int, 5, "Candidate personas per passage.", min=1, panel=PANEL),
    Option("question_types", str, dict.fromkeys(QUESTION_TYPES, 1), "Weights, e.g. keywords=2,summary=1.",
           panel=PANEL),
    Option("difficulties", str, dict.fromkeys(DIFFICULTIES, 1), "Weights, e.g. university=1,phd=1.", panel=PANEL),
    Option("query_lengths", str, {"5": 1, "10": 2, "15": 2, "25": 1}, "Weights of lengths in words, e.g. 5=1,10=2.",
           panel=PANEL),
    Option("query_languages", str, {SAME_LANGUAGE: 1}, "Weights, e.g. same=3,en=1.", panel=PANEL),
    band("query_length_tolerance", 0.5, "Query length within +-this share of the requested."),
    *OPTIONAL_EMBED_OPTIONS,
)
"""The paper's five question types and three difficulties, equally likely; lengths in words (CJK: characters)
and the +-50% length tolerance are ours."""


PASSAGE_FIELD = {Task.RETRIEVAL: "positive", Task.PASSAGE: "text"}
"""The text a query is written for: a retrieval record's positive, or a document's passage."""


class QuerygenStage(SynthesisStage):
    name = "querygen"
    techniques = ("querygen_config", "querygen_query")

    def __init__(self, options: dict[str, Any], settings: LLMSettings):
        super().__init__(options, settings)
        self.personas_path = Path(options.get("personas") or default_personas_path())
        self.personas = load_personas(self.personas_path)
        self.top_k = int(options["top_personas"])
        self.sampler = RequirementSampler(options)
        self.similarity = TextSimilarity(options) if embedder_configured(options) else None
        self.index: PersonaIndex | None = None

    def technique_config(self) -> dict[str, Any]:
        return {**self.sampler.config(), "personas": file_fingerprint(self.personas_path)[:16],
                "top_personas": self.top_k, "query_length_tolerance": float(self.options["query_length_tolerance"]),
                **embed_config(self.options)}

    def sample_context(self, technique: str) -> dict[str, Any]:
        model = QueryConfig if technique == "querygen_config" else GeneratedQuery
        return {"lang": "en", "passage": "p", "characters": ["c1", "c2"], "character": "c1",
                "question_type": "summary", "difficulty": "phd", "length": 10, "passage_lang": "en",
                "passage_language": "English", "query_lang": "en", "query_language": "English",
                "num": 1, "avoid": ["{}"], "output_schema": schema_json(model)}

    def prepare(self, parts: list[PartRef]) -> None:
        self.index = PersonaIndex(self.personas, self.similarity)

    def check_config(self, job: Job, item: Any) -> Failure | None:
        if match_persona(item.character, job.context["candidates"]) is None:
            return Failure("unknown_character", f"{item.character[:80]!r} is not one of the candidate personas")
        return None

    def check_query(self, job: Job, item: Any) -> Failure | None:
        query, passage = Measured(item.query), job.measured["passage"]  # each measured once
        return (check_nonempty(query, "query") or check_no_new_markup(passage, query)
                or check_language(job.context["query_lang"], query)
                or check_word_count(query, job.context["length"], float(self.options["query_length_tolerance"]))
                or check_not_copied(query, passage)
                or check_not_copied(query, job.context["character"], "persona")
                or self.check_new_query(query, job.context["original_query"]))

    @staticmethod
    def check_new_query(query: Text, original: str | None) -> Failure | None:
        """A query for a record that has one must differ from it (a passage has none)."""
        if original is None:
            return None
        return check_distinct(query, original, 0.0, "same_as_source_query", "the record's own query")

    def synthesise(self, task: Task, rows: list[dict[str, Any]]) -> Synthesised:
        if task not in PASSAGE_FIELD:
            return Synthesised.not_applicable(rows)
        assert self.index is not None, "prepare() builds the persona index"
        passages = [row[PASSAGE_FIELD[task]] for row in rows]
        candidates = self.index.top(passages, [r["id"] for r in rows], self.top_k)
        configs = []
        for index, row in enumerate(rows):
            measured = {"passage": Measured(passages[index])}  # for the checks of every query of the passage
            for slot in range(self.num):
                need = self.sampler.draw(row["id"], slot, row["lang"])
                context = {**self.language_context(row["lang"], need.lang), "passage": passages[index],
                           "characters": [p.text for p in candidates[index]], "candidates": candidates[index],
                           "question_type": need.question_type, "difficulty": need.difficulty,
                           "length": need.length, "original_query": row.get("query"),
                           "output_schema": schema_json(QueryConfig)}
                template = self.library.for_lang("querygen_config", row["lang"])
                configs.append(Job(index, template, context, QueryConfig, measured=measured))
        config_rejects, config_stats = self.generate(configs, lambda job, parsed: [parsed], self.check_config)
        queries = []
        for config in configs:
            persona = self.picked_persona(config)
            if persona is not None:
                context = {**config.context, "character": persona.text, "persona": persona,
                           "output_schema": schema_json(GeneratedQuery)}
                template = self.library.for_lang("querygen_query", rows[config.index]["lang"])
                queries.append((config, Job(config.index, template, context, GeneratedQuery,
                                            measured=config.measured)))
        query_rejects, query_stats = self.generate([q for _, q in queries], lambda job, parsed: [parsed],
                                                   self.check_query)
        result = Synthesised(rejected=config_rejects + query_rejects,
                             stats=self.merge_stats(config_stats, query_stats),
                             failed=config_stats.failed + query_stats.failed)
        for config, job in queries:
            if job.kept:
                result.added.setdefault(job.index, []).append(self.query_row(rows[job.index], config, job))
        return result

    def expected_answer(self, job: Job, row: dict[str, Any]) -> Any:
        """A config answer names a candidate persona; a query answer is a query of the requested length."""
        if job.response_model is QueryConfig:
            return {"character": job.context["characters"][0] if job.context["characters"] else ""}
        return {"query": " ".join(tokens(job.context["passage"])[: job.context["length"]])}

    def picked_persona(self, config: Job) -> Any:
        """The persona a config answer picked; under `--estimate` (nothing answered) the first candidate stands in,
        so the query requests are counted too."""
        if config.kept:
            return match_persona(config.kept[0].character, config.context["candidates"])
        candidates = config.context["candidates"]
        return candidates[0] if self.sample is not None and candidates else None

    @staticmethod
    def language_context(passage_lang: str, query_lang: str) -> dict[str, Any]:
        return {"lang": passage_lang, "passage_lang": passage_lang, "passage_language": language_name(passage_lang),
                "query_lang": query_lang, "query_language": language_name(query_lang)}

    @staticmethod
    def merge_stats(config: RoundStats, query: RoundStats) -> dict[str, int]:
        """Both steps' counters, prefixed, plus the whole stage's generated / kept queries."""
        stats = {f"config_{k}": v for k, v in config.as_dict().items()}
        stats.update({f"query_{k}": v for k, v in query.as_dict().items()})
        stats.update(generated=query.generated, kept=query.kept)
        return stats

    def query_row(self, parent: dict[str, Any], config: Job, job: Job) -> dict[str, Any]:
        context = job.context
        persona = context["persona"]
        meta = {"persona": persona.text, "persona_id": persona.id, "question_type": context["question_type"],
                "difficulty": context["difficulty"], "length": context["length"], "query_lang": context["query_lang"],
                "passage_lang": context["passage_lang"], "config_template": config.template.name,
                "config_template_sha": config.template.sha}
        row = self.derived_row(parent, Task.RETRIEVAL, {"query": job.kept[0].query, "positive": context["passage"]},
                               "querygen", job.template, meta)
        row["lang"] = context["query_lang"]
        return row


QUERYGEN = synthesis_spec(
    QuerygenStage, "Generate queries for passages from the point of view of matching personas.", OPTIONS,
    shared=(NUM.but(default=1, help="Queries per passage."),))
