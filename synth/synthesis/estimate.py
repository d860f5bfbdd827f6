"""`--estimate`: what a synthesis stage would send and cost, from the real prompts of a sample of its rows.

Nothing is sent and nothing is written. The stage builds its jobs from a sample of rows exactly as in a run, and
each job's first prompt is rendered and counted with the model's tokenizer (`--tokenizer`) or else the offline token
estimator; without an earlier run a record takes one try (`estimate_requests_at_most` assumes every record uses
`max_tries`) and an answer is as long as the record's own texts per output (querygen: a persona's name, then a
query of the requested length). With the manifest of an earlier run in
the same `--out` (a pilot on some parts), tries per record and tokens per request are the measured ones: the checks'
real retry rate and the retries' longer prompts.

A stage with an embedder (`embedder = "api"` or `local`) embeds into a `CountingEmbedder` instead (zero vectors:
querygen's persona candidates are then its seeded tie-break, not the most similar personas); an API embedder's
requests, texts, tokens and cost are shown as `estimate_embed_*`, the cost also in the stage's total. Counted as a
run sends them through the embedding cache: distinct texts the cache does not hold, each once per run. Exact for the
sampled rows: querygen's personas (once per stage, not scaled with the rows) and each part's passages (one call per
part); augment's record sources (at the record's first topic band, a request each). Augment's outputs are counted
like the chat requests, one try per record with every output reaching the topic band, a request each: retries embed
theirs too (up to `max_tries` times as many), outputs that fail an earlier check embed nothing. Scaled to all rows
like the chat requests: texts and one-text requests in number, a call over a part's rows in size (exact when every
part is sampled whole).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synth.embed.estimate import CountingEmbedder, EmbedCount, embed_stats, with_embedding
from synth.embed.options import api_embedder
from synth.llm.estimate import answer_tokens, estimate_summary, prompt_tokens, sample_rows, token_counter
from synth.llm.settings import LLMSettings
from synth.llm.tokens import estimate_text_tokens
from synth.schema import Task
from synth.stage import StageSummary
from synth.synthesis.generation import Job, render_job
from synth.tasks import TASKS


@dataclass
class Sample:
    """The first prompts of the sampled rows' jobs, in tokens."""

    rows: int = 0
    jobs: int = 0
    outputs: int = 0
    """Outputs the jobs want: new rows, or new negatives of their records (llm-negatives)."""
    prompt_tokens: int = 0
    answer_tokens: int = 0
    """What the answers would hold if each output were as long as its record's texts."""
    part_rows: list[dict[str, Any]] = field(default_factory=list)
    """The rows of the part being sampled (jobs point into them by index)."""
    count: Callable[[str], int] = estimate_text_tokens
    """Tokens of one text: the model's tokenizer when one is given, else the offline estimator."""
    embedder: CountingEmbedder | None = None
    """The stage's embedder's stand-in, when it has one: what a run would embed is counted there."""

    def add(self, jobs: list[Job], answer_of: Callable[[Job, dict[str, Any]], Any],
            embedded: Callable[[Job, Any, CountingEmbedder], None] | None = None) -> None:
        """Count the first prompt of every job (in place of sending it), the answer the stage expects for it, and
        what `embedded` says a run would embed for that answer."""
        for job in jobs:
            self.jobs += 1
            self.outputs += job.wanted
            self.prompt_tokens += prompt_tokens(render_job(job), self.count)
            answer = answer_of(job, self.part_rows[job.index])
            self.answer_tokens += answer_tokens(answer, self.count)
            if self.embedder is not None and embedded is not None:
                embedded(job, answer, self.embedder)


def same_length_answer(job: Job, row: dict[str, Any]) -> Any:
    """A job's expected answer: `wanted` outputs, each as long as its record's own texts (rewrites, negatives)."""
    return [{name: row.get(name) for name in TASKS[Task(row["task"])].main_texts if row.get(name)}] * job.wanted


def estimate_stage(stage: Any, inputs: list[Path], settings: LLMSettings, tokenizer: str | None = None) -> StageSummary:
    """The stage's estimate as a summary whose stats are the estimate (printed like a run's summary), with the rows
    it would write (`estimate_rows_out`: each output a new row unless the outputs are negatives of their record)."""
    total_rows, sampled = sample_rows(inputs)
    sample = Sample(count=token_counter(tokenizer))
    if stage.similarity is not None:
        sample.embedder = stage.similarity.embedder = CountingEmbedder(stage.similarity.embedder, sample.count)
    stage.prepare([part for part, _ in sampled])  # what a run builds first (querygen's persona index)
    once = sample.embedder.take() if sample.embedder else EmbedCount()
    stage.sample = sample
    for part, rows in sampled:
        if rows:
            sample.rows += len(rows)
            sample.part_rows = rows
            stage.synthesise(part.task, rows)
    stage.sample = None
    added = sample.outputs if stage.output_kind == "record" else 0
    kept = 0 if stage.output_kind == "record" and stage.options.get("drop_source") else sample.rows
    scale = total_rows / sample.rows if sample.rows else 0.0
    summary = estimate_summary(stage.name, Path(stage.out), total_rows, sample.rows, sample.jobs,
                               sample.prompt_tokens, sample.answer_tokens, settings, stage.max_tries,
                               {"estimate_rows_out": round((added + kept) * scale)})
    if sample.embedder is not None and api_embedder(stage.options):
        sent = once + sample.embedder.take(scale)
        summary.stats = with_embedding(summary.stats, embed_stats(sent, sample.embedder))
    return summary
