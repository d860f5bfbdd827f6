"""`--estimate`'s shared arithmetic: token counts (the model's tokenizer or the offline estimator), the sample of rows
an estimate reads, an earlier run's measured tries and tokens, and requests and tokens turned into cost (online and
at batch prices) and time. Each LLM stage renders its own real prompts; this turns them into the numbers it prints.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import pyarrow.parquet as pq
from pydantic import BaseModel

from synth.llm.accounting import PART_STATS_PREFIX
from synth.llm.batch.client import COMPLETION_WINDOW
from synth.llm.settings import LLMSettings
from synth.llm.tokens import estimate_message_tokens, estimate_text_tokens, tokenizer_counter
from synth.registry import Option
from synth.stage import StageSummary, input_parts
from synth.store import PartRef, read_part

SAMPLE_ROWS = 200
"""Rows whose prompts are rendered: enough for a stable mean, few enough to estimate a billion-row stage at once."""
SCALED = ("estimate_requests", "estimate_requests_at_most", "estimate_prompt_tokens", "estimate_completion_tokens",
          "estimate_cost_usd", "estimate_batch_cost_usd", "estimate_minutes_at_limits", "estimate_rows_out",
          "estimate_texts", "estimate_embed_requests", "estimate_embed_texts", "estimate_embed_tokens",
          "estimate_embed_cost_usd", "estimate_embed_minutes_at_limits")
"""The estimate's numbers that grow with the rows (the others are per row or flags). On stand-in rows the
embedder's are scaled whole: querygen's personas (embedded once per stage) too, and a call over a part's rows grows
in number, not in size, so its requests are at most a run's."""
ONE_SENTENCE = "The passage names the same event, place and date as the query asks about, so it answers it."
"""A judge's one-sentence reason, as long as a model's usually are: the answer an estimate counts for a verdict."""
ESTIMATE_OPTIONS: tuple[Option, ...] = (
    Option("estimate", bool, False, "Print the requests, tokens, cost (online and batch) and time this run would "
           "take, from the real prompts of a sample of rows; send and write nothing.", flags=("--estimate",)),
    Option("tokenizer", str, None, "The model's tokenizer for --estimate's token counts: a folder or tokenizer.json, "
           "or a model name in the local Hugging Face cache (never downloaded).", default_text="offline estimator"),
)
"""Every LLM stage's `--estimate` and `--tokenizer`."""


def token_counter(tokenizer: str | None) -> Callable[[str], int]:
    """`--tokenizer`'s count of a text's tokens, else the offline estimator's."""
    return tokenizer_counter(tokenizer) if tokenizer else estimate_text_tokens


def prompt_tokens(prompt: str, count: Callable[[str], int]) -> int:
    """Tokens of a one-message chat request (every LLM stage sends its prompt as one user message)."""
    return estimate_message_tokens([{"role": "user", "content": prompt}], count)


def answer_tokens(answer: dict[str, Any], count: Callable[[str], int]) -> int:
    """Tokens of an answer, as the JSON the model writes."""
    return count(json.dumps(answer, ensure_ascii=False))


def verdict_tokens(answer: type[BaseModel], count: Callable[[str], int]) -> int:
    """Tokens of a judge's verdict: its yes/no and choice fields and a one-sentence reason."""
    def value(annotation: Any) -> Any:
        if annotation is bool:
            return True
        return get_args(annotation)[0] if get_origin(annotation) is Literal else ONE_SENTENCE

    return answer_tokens({name: value(info.annotation) for name, info in answer.model_fields.items()}, count)


def count_rows(parts: list[PartRef]) -> int:
    """Rows of the parts, from their Parquet footers."""
    return sum(pq.read_metadata(part.path).num_rows for part in parts)


def sample_rows(inputs: list[Path]) -> tuple[int, list[tuple[PartRef, list[dict[str, Any]]]]]:
    """The input parts' row count, and up to `SAMPLE_ROWS` rows spread over the parts (the first of each)."""
    parts = input_parts(inputs)
    total = count_rows(parts)
    per_part = max(1, math.ceil(SAMPLE_ROWS / max(1, len(parts))))
    return total, [(part, read_part(part).slice(0, per_part).to_pylist()) for part in parts]


def estimate_summary(stage: str, out: Path, rows: int, sampled: int, requests: float, prompt: float,
                     completion: float, settings: LLMSettings, max_tries: int = 1,
                     extra: dict[str, Any] | None = None) -> StageSummary:
    """A stage's estimate from the requests and tokens of its sampled rows, scaled to all `rows`; with the manifest
    of an earlier run in `out`, its measured requests per row and tokens per request instead."""
    scale = rows / sampled if sampled else 0.0
    at_most = requests * scale * max_tries
    earlier = _earlier_run(out)
    if earlier:
        requests = earlier["requests_per_row"] * rows
        prompt, completion = earlier["prompt_per_request"] * requests, earlier["completion_per_request"] * requests
    else:
        requests, prompt, completion = requests * scale, prompt * scale, completion * scale
    stats = {"estimate_rows": rows, "estimate_rows_sampled": sampled, "estimate_requests_at_most": round(at_most),
             "estimate_tries_from_earlier_run": int(earlier is not None), **(extra or {}),
             **cost_and_time(requests, prompt, completion, settings)}
    return StageSummary(stage, out, rows_in=rows, stats=stats)


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


def scaled(stats: dict[str, Any], factor: float) -> dict[str, Any]:
    """An estimate made on stand-in rows, scaled to the rows an earlier stage is estimated to make."""
    return {k: (v if k not in SCALED else round(v * factor) if isinstance(v, int) else v * factor)
            for k, v in stats.items()}


def _earlier_run(out: Path) -> dict[str, float] | None:
    """Requests per input row, prompt and answer tokens per request of the finished parts of an earlier run."""
    manifest = Path(out) / "_manifest.json"
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
