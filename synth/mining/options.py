"""The options of `synth mine` (corpus, index, rules), declared once: the settings classes take their defaults here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synth.mining.corpus import CORPUS_SOURCES
from synth.registry import Option, defaults_of

SAMPLING = ("top", "random")
PANEL_RULES = "Mining rules"
PANEL_INDEX = "Corpus and index"
OFF = ("none", "off")
"""Values that switch an optional float rule off."""

MINE_OPTIONS: tuple[Option, ...] = (
    Option("corpus", list[Path], [], "Extra candidate passages: .txt (a line each), .jsonl, .csv, .tsv or .parquet, "
           "optionally .gz (repeatable).",
           panel=PANEL_INDEX),
    Option("corpus_from", str, "both", f"Candidates from: {' | '.join(CORPUS_SOURCES)} (positives = the records' "
           "positives and the inputs' passages).", panel=PANEL_INDEX),
    Option("corpus_field", str, "text", "Text field of .jsonl/.csv/.tsv/.parquet corpus files.", panel=PANEL_INDEX),
    Option("exact_max", int, 200_000, "Largest corpus searched exactly; IVF above.", min=1, panel=PANEL_INDEX),
    Option("nlist", int, None, "IVF lists.", min=1, default_text="4*sqrt(N)", panel=PANEL_INDEX),
    Option("pq_min", int, 20_000_000, "Smallest corpus whose IVF index stores compressed vectors (IVF-PQ; "
           "candidates are scored again on the full vectors).", min=1, panel=PANEL_INDEX),
    Option("nprobe", int, 32, "IVF lists searched.", min=1, panel=PANEL_INDEX),
    Option("search_batch_size", int, 1024, "Queries per FAISS search.", min=1, panel=PANEL_INDEX),
    Option("range_min", int, 0, "Skip the best RANGE_MIN surviving candidates.", min=0, panel=PANEL_RULES),
    Option("range_max", int, 30, "Consider surviving candidates ranked below RANGE_MAX.", min=1, panel=PANEL_RULES),
    Option("num_negatives", int, 4, "Negatives per record.", flags=("--num-negatives", "-n"), min=1,
           panel=PANEL_RULES),
    Option("sampling", str, SAMPLING[0], f"{' | '.join(SAMPLING)}.", panel=PANEL_RULES),
    Option("seed", int, 0, "Seed of random sampling.", panel=PANEL_RULES),
    Option("max_score", str, None, "Drop candidates scoring at or above this.", default_text="none",
           panel=PANEL_RULES),
    Option("margin", str, None, "Keep only neg < pos - MARGIN.", default_text="none", panel=PANEL_RULES),
    Option("relative_margin", str, 0.0, "Keep only neg < pos * (1 - R); 'none' switches it off.",
           panel=PANEL_RULES),
    Option("dup_threshold", str, 0.98, "Cosine to a positive at which a candidate is its near-duplicate; "
           "'none' = off.", panel=PANEL_RULES),
    Option("roundtrip_k", int, 20, "Keep a generated record only if its positive ranks in the top K of the corpus "
           "for its query; 0 = off.", min=0, panel=PANEL_RULES),
    Option("rescore_model", str, None, "sentence-transformers CrossEncoder (name or path) that re-scores the "
           "candidates: max-score and the margins apply to its scores, and records keep them as teacher scores.",
           default_text="none", panel=PANEL_RULES),
    Option("roundtrip_origins", list[str], ["querygen"], "Record origins the round-trip check applies to "
           "(repeatable).", panel=PANEL_RULES),
)
"""The relative margin defaults to 0 (a negative must score below its positive), not NV-Retriever's 0.05: measured
with `bench/bench_quality.py`, see docs/mining.md#why-the-relative-margin-is-0."""
MINE_DEFAULTS: dict[str, Any] = defaults_of(MINE_OPTIONS)
