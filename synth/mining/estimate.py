"""`synth mine --embedder api --estimate`: the embedding requests, tokens, cost and time a run would take, from the
texts of a sample of its rows (and every item of its corpus files); nothing is sent and nothing is written.

Texts already in the embedding cache, and texts repeated within the sample, are not counted: a run sends neither.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from synth.embed import build_embedder
from synth.embed.cached import CachedEmbedder
from synth.embed.estimate import online_settings, uncached
from synth.embed.instructions import format_query
from synth.embed.options import api_embedder
from synth.errors import UsageError
from synth.llm.estimate import SAMPLE_ROWS, cost_and_time, sample_rows, token_counter
from synth.mining.corpus import SkippedRows, read_corpus_file
from synth.schema import Task
from synth.stage import StageSummary


def row_texts(task: Task, row: dict[str, Any], query_format: str, passages: bool) -> list[str]:
    """What mining embeds of one record: a retrieval record's query (as the model sees it), positive and negatives;
    a passage's text when the inputs' passages are candidates; nothing of the records it passes through."""
    if task == Task.RETRIEVAL:
        return [format_query(row["query"], row.get("instruction"), query_format), row["positive"],
                *(row.get("negatives") or [])]
    text = row.get("text")
    return [text] if passages and task == Task.PASSAGE and isinstance(text, str) and text.strip() else []


def estimate_mine(options: dict[str, Any]) -> StageSummary:
    """Texts to embed, requests of `embed_batch_size` texts, tokens, cost from `prices` and minutes at the limits."""
    if not api_embedder(options):
        raise UsageError("mine --estimate counts the requests of --embedder api; a local model sends none")
    embedder = build_embedder(options)
    count = token_counter(options.get("tokenizer"))
    rows, sampled = sample_rows([Path(p) for p in options["inputs"]])
    passages = options.get("corpus_from") in ("positives", "both")
    sampled_rows = sum(len(part_rows) for _, part_rows in sampled)
    missing = uncached((t for part, part_rows in sampled for row in part_rows
                        for t in row_texts(part.task, row, embedder.query_format, passages)), embedder)
    scale = rows / sampled_rows if sampled_rows else 0.0
    texts, tokens = len(missing) * scale, sum(count(t) for t in missing) * scale
    if options.get("corpus_from") in ("file", "both"):
        corpus_texts, corpus_tokens = corpus_estimate([Path(p) for p in options.get("corpus") or []],
                                                      str(options["corpus_field"]), embedder, count)
        texts, tokens = texts + corpus_texts, tokens + corpus_tokens
    requests = math.ceil(texts / int(options["embed_batch_size"]))
    stats = {"estimate_rows": rows, "estimate_rows_sampled": sampled_rows, "estimate_texts": round(texts),
             **cost_and_time(requests, tokens, 0, online_settings(embedder)), "estimate_rows_out": rows}
    stats.pop("estimate_batch_cost_usd", None)
    return StageSummary("mine", Path(options["out"]), rows_in=rows, stats=stats)


def corpus_estimate(files: list[Path], field: str, embedder: CachedEmbedder, count: Any) -> tuple[float, float]:
    """(texts to embed, their tokens) of the corpus files: every item counted, the first `SAMPLE_ROWS` measured."""
    items, head = 0, []
    for path in files:
        for item in read_corpus_file(path, field, SkippedRows()):
            items += 1
            if len(head) < SAMPLE_ROWS:
                head.append(item.text)
    missing = uncached(head, embedder)
    share = items / len(head) if head else 0.0
    return len(missing) * share, sum(count(t) for t in missing) * share
