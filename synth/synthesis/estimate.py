"""`--estimate`: what a synthesis stage would send and cost, from the real prompts of a sample of its rows.

Nothing is sent and nothing is written. The stage builds its jobs from a sample of rows exactly as in a run, and
each job's first prompt is rendered and counted with the model's tokenizer (`--tokenizer`) or else the offline token
estimator; without an earlier run a record
takes one try (`estimate_requests_at_most` assumes every record uses `max_tries`) and an answer is as long as the
record's own texts per output. With the manifest of an earlier run in the same `--out` (a pilot on some parts),
tries per record and tokens per request are the measured ones: the checks' real retry rate and the retries' longer
prompts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from synth.llm.accounting import PART_STATS_PREFIX
from synth.llm.batch.client import COMPLETION_WINDOW
from synth.llm.settings import LLMSettings
from synth.llm.tokens import estimate_message_tokens, estimate_text_tokens, tokenizer_counter
from synth.schema import Task
from synth.stage import StageSummary, input_parts
from synth.store import read_part
from synth.synthesis.generation import Job, render_job
from synth.tasks import TASKS

SAMPLE_ROWS = 200
"""Rows whose prompts are rendered: enough for a stable mean, few enough to estimate a billion-row stage at once."""


@dataclass
class Sample:
    """The first prompts of the sampled rows' jobs, in estimated tokens."""

    rows: int = 0
    jobs: int = 0
    prompt_tokens: int = 0
    answer_tokens: int = 0
    """What the answers would hold if each output were as long as its record's texts."""
    part_rows: list[dict[str, Any]] = field(default_factory=list)
    """The rows of the part being sampled (jobs point into them by index)."""
    count: Callable[[str], int] = estimate_text_tokens
    """Tokens of one text: the model's tokenizer when one is given, else the offline estimator."""

    def add(self, jobs: list[Job]) -> None:
        """Count the first prompt of every job (in place of sending it)."""
        rows = self.part_rows
        for job in jobs:
            self.jobs += 1
            self.prompt_tokens += estimate_message_tokens([{"role": "user", "content": render_job(job)}], self.count)
            row = rows[job.index]
            texts = {name: row.get(name) for name in TASKS[Task(row["task"])].main_texts if row.get(name)}
            self.answer_tokens += job.wanted * self.count(json.dumps(texts, ensure_ascii=False))


def token_counter(tokenizer: str | None) -> Callable[[str], int]:
    """`--tokenizer`'s count of a text's tokens, else the offline estimator's."""
    return tokenizer_counter(tokenizer) if tokenizer else estimate_text_tokens


def estimate_stage(stage: Any, inputs: list[Path], settings: LLMSettings, tokenizer: str | None = None) -> StageSummary:
    """The stage's estimate as a summary whose stats are the estimate (printed like a run's summary)."""
    parts = input_parts(inputs)
    total_rows = sum(pq.read_metadata(part.path).num_rows for part in parts)
    per_part = max(1, math.ceil(SAMPLE_ROWS / max(1, len(parts))))
    sample = Sample(count=token_counter(tokenizer))
    stage.sample = sample
    for part in parts:
        rows = read_part(part).slice(0, per_part).to_pylist()
        if rows:
            sample.rows += len(rows)
            sample.part_rows = rows
            stage.synthesise(part.task, rows)
    stage.sample = None
    scale = total_rows / sample.rows if sample.rows else 0.0
    earlier = _earlier_run(Path(stage.out))
    if earlier:
        requests = earlier["requests_per_row"] * total_rows
        prompt = earlier["prompt_per_request"] * requests
        completion = earlier["completion_per_request"] * requests
    else:
        requests = sample.jobs * scale
        prompt = sample.prompt_tokens * scale
        completion = sample.answer_tokens * scale
    stats = {"estimate_rows": total_rows, "estimate_rows_sampled": sample.rows,
             "estimate_requests_at_most": round(sample.jobs * scale * stage.max_tries),
             "estimate_tries_from_earlier_run": int(earlier is not None),
             **cost_and_time(requests, prompt, completion, settings)}
    return StageSummary(stage.name, Path(stage.out), rows_in=total_rows, stats=stats)


def cost_and_time(requests: float, prompt: float, completion: float, settings: LLMSettings) -> dict[str, Any]:
    """The estimate's requests and tokens with their cost online and in batch mode (with a price for the model) and
    when the answers come: minutes at the rpm/tpm limits online, the batch window in batch mode."""
    stats: dict[str, Any] = {"estimate_requests": round(requests), "estimate_prompt_tokens": round(prompt),
                             "estimate_completion_tokens": round(completion)}
    for key, price in (("estimate_cost_usd", settings.prices.get(settings.model or "")),
                       ("estimate_batch_cost_usd", settings.batch_price(settings.model))):
        if price:
            stats[key] = (prompt * price.get("input", 0.0) + completion * price.get("output", 0.0)) / 1e6
    if settings.mode == "batch":
        stats["estimate_answers_within_hours"] = int(COMPLETION_WINDOW.rstrip("h"))
    if settings.mode != "online":  # offline: answered whenever the user runs the batch file
        return stats
    minutes = [v for v in (requests / settings.rpm if settings.rpm else None,
                           (prompt + completion) / settings.tpm if settings.tpm else None) if v is not None]
    if minutes:
        stats["estimate_minutes_at_limits"] = max(minutes)
    return stats


def _earlier_run(out: Path) -> dict[str, float] | None:
    """Requests per input row, prompt and answer tokens per request of the finished parts of an earlier run."""
    manifest = out / "_manifest.json"
    if not manifest.is_file():
        return None
    totals = json.loads(manifest.read_text(encoding="utf-8")).get("totals") or {}
    stats, rows = totals.get("stats") or {}, totals.get("rows_in") or 0
    answered = stats.get(PART_STATS_PREFIX + "answered", 0)
    if not rows or not answered:
        return None
    sent = stats.get(PART_STATS_PREFIX + "requests", 0) + stats.get(PART_STATS_PREFIX + "from_journal", 0)
    return {"requests_per_row": sent / rows,
            "prompt_per_request": stats.get(PART_STATS_PREFIX + "prompt_tokens", 0) / answered,
            "completion_per_request": stats.get(PART_STATS_PREFIX + "completion_tokens", 0) / answered}
