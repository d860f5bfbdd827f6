"""What the four synthesis stages share: options, templates checked up front, the engine, lineage of new rows."""

from __future__ import annotations

import json
import threading
from abc import abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
from pydantic import ValidationError

from synth.embed.estimate import CountingEmbedder
from synth.errors import ConfigError
from synth.llm import ChatRequest, ChatResult, LLMEngine, LLMSettings, endpoint_stats
from synth.llm.accounting import as_part_stats
from synth.llm.batch.collector import WAITING
from synth.llm.engine import counting
from synth.llm.journal import journal_path
from synth.progress import RequestProgress
from synth.prompts import PromptLibrary, PromptTemplate
from synth.schema import RejectKind, Task, validate_row
from synth.stage import PartResult, Stage, console
from synth.store import PartRef, location, reject
from synth.synthesis.estimate import Sample, same_length_answer
from synth.synthesis.generation import Check, ItemsOf, Job, RejectedOutput, RoundStats, as_data, run_jobs
from synth.synthesis.similarity import TextSimilarity

_META_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True)
"""What json.dumps(meta, ensure_ascii=False, sort_keys=True) uses, made once instead of once per row."""


def merged_meta(row: dict[str, Any], extra: dict[str, Any]) -> str:
    """The row's meta JSON with `extra` merged in."""
    meta = json.loads(row.get("meta") or "{}")
    meta.update(extra)
    return _META_ENCODER.encode(meta)


class SynthesisStage(Stage):
    """A part-wise LLM stage: subclasses build jobs from rows and rows from kept outputs."""

    techniques: tuple[str, ...] = ()
    similarity: TextSimilarity | None = None
    """The embedder of a technique's checks or persona choice, when one is configured."""
    output_kind: RejectKind = "record"
    """What a rejected output would have been: a record, or a negative of its parent (llm-negatives)."""

    def __init__(self, options: dict[str, Any], settings: LLMSettings):
        self.options = options
        self.settings = settings
        self.out = Path(options["out"])
        self.library = PromptLibrary(options.get("prompts"))
        self.num = int(options["num"])
        self.max_tries = int(options["max_tries"])
        if self.num < 1 or self.max_tries < 1:
            raise ConfigError("num and max_tries must be at least 1")
        self.templates: list[PromptTemplate] = []
        for technique in self.techniques:
            self.templates += self.library.check(technique, technique, self.sample_context(technique))
        self.parts_in_flight = int(options.get("parts_in_flight") or 1)
        self._engine: LLMEngine | None = None
        self._engine_lock = threading.Lock()
        self._answer_shown = False
        self._template_meta: dict[tuple[str, str], str] = {}
        self.sample: Sample | None = None
        """Set by `--estimate`: jobs are counted there instead of sent."""

    # -- what a subclass provides -------------------------------------------------------------
    @abstractmethod
    def sample_context(self, technique: str) -> dict[str, Any]:
        """Every variable a technique's templates may use, with sample values for the up-front test render."""

    @abstractmethod
    def synthesise(self, task: Task, rows: list[dict[str, Any]]) -> Synthesised:
        """New rows (or replacements) for one part's rows, with rejects and stats."""

    def expected_answer(self, job: Job, row: dict[str, Any]) -> Any:
        """What `--estimate` counts as a job's answer; a stage whose answers are not rewrites of its record says."""
        return same_length_answer(job, row)

    def embedded_for_answer(self, job: Job, answer: Any, embedder: CountingEmbedder) -> None:
        """What a run embeds for one answer of a job, embedded into `--estimate`'s `embedder`: nothing, unless a
        stage's checks embed its outputs."""

    def technique_config(self) -> dict[str, Any]:
        """The stage's own options that decide its output."""
        return {}

    # -- shared machinery ---------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {
            **self.technique_config(),
            "num": self.num,
            "max_tries": self.max_tries,
            "drop_source": bool(self.options["drop_source"]),
            "llm": self.settings.output_config(),
            "templates": {t.name: t.sha for t in self.templates},
        }

    @property
    def engine(self) -> LLMEngine:
        with self._engine_lock:  # parts in flight run in threads: one engine for all of them
            if self._engine is None:
                self._engine = LLMEngine(self.settings, journal=journal_path(self.out), stage=self.name)
            return self._engine

    def __getstate__(self) -> dict[str, Any]:
        # Sent to a cluster's worker: connections, the journal and the lock stay in this process.
        return {**self.__dict__, "_engine": None, "_engine_lock": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _engine_lock=threading.Lock())

    def endpoint_usage(self) -> dict[str, Any]:
        """Per-endpoint requests, failures, latency and cost of this process's engine (closed after each part on a
        cluster's worker: read before `close`) and of an API embedder's."""
        return endpoint_stats.fold([self._engine.endpoint_usage() if self._engine is not None else {},
                                    self.similarity.embedder.endpoint_usage() if self.similarity else {}])

    def close(self) -> None:
        """Close the engine (its accounting is already in every part's stats) and the similarity's embedder."""
        if self._engine is not None:
            self._engine.close()
            self._engine = None
        if self.similarity is not None:
            self.similarity.close()

    async def ask(self, job: Job, prompt: str) -> ChatResult:
        """A job's next request; the try number is a parameter so a retry is never answered from the journal."""
        seed = (self.settings.seed or 0) + job.tries
        return await self.engine.achat(ChatRequest([{"role": "user", "content": prompt}], job.response_model,
                                                   {"seed": seed}), urgent=job.tries > 0)

    def generate(self, jobs: list[Job], items_of: ItemsOf, check: Check) -> tuple[list[RejectedOutput], RoundStats]:
        """Regenerate until every job has its outputs or used `max_tries` requests; say why requests failed."""
        if self.sample is not None:
            self.sample.add(jobs, self.expected_answer, self.embedded_for_answer)
            return [], RoundStats()
        engine = self.engine
        with RequestProgress(self.name, "records", len(jobs), enabled=engine.show_progress) as bar:
            rejected, stats = engine.run(run_jobs(jobs, self.ask, items_of, check, self.max_tries,
                                                  engine.settings.concurrency,
                                                  lambda: bar.advance(engine.accounting)))
        self.show_an_answer(jobs, rejected)
        reasons = [job.failed for job in jobs if job.failed and job.failed != WAITING]  # batch mode says its own
        if reasons:
            console.print(f"[yellow]{self.name}: {len(reasons)} requests failed (asked again on the next run), "
                          f"first: {reasons[0]}", highlight=False, soft_wrap=True)
        return rejected, stats

    def show_an_answer(self, jobs: list[Job], rejected: list[RejectedOutput]) -> None:
        """Once per stage, one output the model wrote (kept if any, else rejected with its rule): the user sees it."""
        if self._answer_shown:
            return
        kept = next((item for job in jobs for item in job.kept), None)
        if kept is not None:
            shown, verdict = kept, "kept"
        elif rejected:
            shown, verdict = rejected[0].item, f"rejected: {rejected[0].failure.rule}"
        else:
            return
        text = json.dumps(as_data(shown), ensure_ascii=False)
        console.print(f"{self.name}: the model wrote ({verdict}): {text[:300]}", highlight=False, markup=False,
                      soft_wrap=True)
        self._answer_shown = True

    def new_rows(self, task: Task, rows: list[dict[str, Any]], jobs: list[Job], items_of: ItemsOf,
                  check: Check) -> Synthesised:
        """Generate for every job, then one new row per kept output after its parent (`fields_of` fills it)."""
        rejected, stats = self.generate(jobs, items_of, check)
        result = Synthesised(rejected=rejected, stats=stats.as_dict(), failed=stats.failed)
        for job in jobs:
            parent = rows[job.index]
            result.added[job.index] = [
                self.derived_row(parent, task, self.fields_of(task, parent, item), self.name, job.template)
                for item in job.kept
            ]
        return result

    def fields_of(self, task: Task, parent: dict[str, Any], item: Any) -> dict[str, Any]:
        """A new row's task fields from its parent and one kept output (stages that add rows define it)."""
        return item.model_dump()

    def derived_row(self, parent: dict[str, Any], task: Task, fields: dict[str, Any], origin: str,
                    template: PromptTemplate, extra_meta: dict[str, Any] | None = None) -> dict[str, Any]:
        """A new unified row descended from `parent`: lineage, template name and hash in `meta`."""
        return {
            "task": task.value,
            "instruction": parent["instruction"],
            "lang": parent["lang"],
            "source": parent["source"],
            "origin": origin,
            "parent_id": parent["id"],
            "document_id": parent.get("document_id"),
            "meta": self.meta_json(template, extra_meta),
            **fields,
        }

    def meta_json(self, template: PromptTemplate, extra_meta: dict[str, Any] | None = None) -> str:
        """A new row's `meta`: its `lineage` plus `extra_meta`. Without extra it is the same for every row of a
        template, so it is encoded once per template, not once per row."""
        if extra_meta:
            return _META_ENCODER.encode({**self.lineage(template), **extra_meta})
        key = (template.name, template.sha)
        if key not in self._template_meta:  # parts in flight may both encode it: the same text
            self._template_meta[key] = _META_ENCODER.encode(self.lineage(template))
        return self._template_meta[key]

    def lineage(self, template: PromptTemplate) -> dict[str, Any]:
        """Where a new row comes from: the template, its hash and the model."""
        return {"template": template.name, "template_sha": template.sha, "model": self.settings.model}

    def rejects_of(
        self, part: PartRef, rejected: list[RejectedOutput], parents: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Reject rows for outputs that failed a check, located by their parent record."""
        return [
            reject(self.name, location(part, r.job.index, parents[r.job.index]["id"]), r.failure.rule,
                   r.failure.reason, as_data(r.item), kind=self.output_kind)
            for r in rejected
        ]

    def process(self, part: PartRef, table: pa.Table) -> PartResult:
        """Sources (unless dropped) each followed by their new rows, in input order; invalid rows become rejects."""
        rows = table.to_pylist()
        with counting() as usage:
            result = self.synthesise(part.task, rows)
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        rejects = self.rejects_of(part, result.rejected, rows)
        kept_new = 0
        for index, row in enumerate(rows):
            source = result.replaced.get(index, row)
            candidates = [(c, True) for c in result.added.get(index, [])]
            if not self.options["drop_source"] or not result.applies or index in result.replaced:
                candidates.insert(0, (source, index in result.replaced))
            for candidate, is_new in candidates:
                try:
                    made = validate_row(candidate["task"], candidate)
                except ValidationError as exc:
                    rejects.append(reject(self.name, location(part, index, row["id"]), "invalid_record",
                                          exc.errors()[0]["msg"], candidate))
                    continue
                if made["id"] in seen:
                    rejects.append(reject(self.name, location(part, index, row["id"]), "duplicate_record",
                                          "same content as another row of this part", made))
                    continue
                seen.add(made["id"])
                out.append(made)
                kept_new += int(is_new)
        # LLM usage per part, so a resumed run's manifest still sums every part's requests, tokens and cost.
        # A part that sent nothing records no usage, whichever parts this process (or worker) made before it.
        llm = as_part_stats(usage.as_dict()) if any(usage.as_dict().values()) else {}
        stats = {**result.stats, **llm, "rows_written_new": kept_new}
        return PartResult(out, rejects, stats, failed=result.failed)


@dataclass
class Synthesised:
    """A stage's work on one part: rows added after a source, sources replaced (llm-negatives), outputs that failed
    a check, stats."""

    added: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    replaced: dict[int, dict[str, Any]] = field(default_factory=dict)
    rejected: list[RejectedOutput] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    failed: int = 0
    applies: bool = True
    """False: the stage does nothing for this task type, and its rows pass through even with `drop_source`."""

    @classmethod
    def not_applicable(cls, rows: list[dict[str, Any]]) -> Synthesised:
        """A part of a task type the stage does not handle: passed through unchanged (and counted)."""
        return cls(stats={"records_not_applicable": len(rows)}, applies=False)

