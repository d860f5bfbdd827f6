"""Mining as a registered stage: its options (embedder, corpus, index, rules), their validation, and the run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synth.embed import build_embedder
from synth.embed.api import API_KEYS
from synth.embed.options import EMBED_OPTIONS, api_embedder
from synth.embed.options import PANEL as EMBED_PANEL
from synth.errors import ConfigError, UsageError
from synth.llm.estimate import ESTIMATE_OPTIONS
from synth.llm.settings import LLM_OPTIONS
from synth.mining.artifact import CorpusSettings
from synth.mining.corpus import CORPUS_SOURCES
from synth.mining.estimate import estimate_mine
from synth.mining.index import IndexSettings
from synth.mining.miner import MineSettings
from synth.mining.options import MINE_OPTIONS, OFF
from synth.mining.stage import MineStage
from synth.registry import Inputs, Option, StageSpec, pick
from synth.stage import StageSummary, run_stage


def optional_float(value: Any, name: str) -> float | None:
    """A float option that `none` (or `off`) switches off."""
    if value is None or (isinstance(value, str) and value.strip().lower() in OFF):
        return None
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be a number or 'none', got {value!r}") from exc


def settings_from(options: dict[str, Any]) -> tuple[MineSettings, CorpusSettings, IndexSettings]:
    """The three settings objects of the stage, validated, from resolved options."""
    corpus_files = tuple(str(p) for p in options["corpus"] or [])
    if options["corpus_from"] not in CORPUS_SOURCES:
        raise ConfigError(f"corpus_from must be one of {', '.join(CORPUS_SOURCES)}, got {options['corpus_from']!r}")
    if options["corpus_from"] == "file" and not corpus_files:
        raise ConfigError("corpus_from = file needs at least one --corpus FILE")
    for path in corpus_files:
        if not Path(path).is_file():
            raise UsageError(f"corpus file not found: {path}")
    mine = MineSettings(
        range_min=int(options["range_min"]),
        range_max=int(options["range_max"]),
        num_negatives=int(options["num_negatives"]),
        sampling=str(options["sampling"]),
        seed=int(options["seed"]),
        max_score=optional_float(options["max_score"], "max_score"),
        margin=optional_float(options["margin"], "margin"),
        relative_margin=optional_float(options["relative_margin"], "relative_margin"),
        dup_threshold=optional_float(options["dup_threshold"], "dup_threshold"),
        roundtrip_k=int(options["roundtrip_k"]),
        roundtrip_origins=tuple(str(o) for o in options["roundtrip_origins"] or []),
        rescore_model=str(options["rescore_model"]) if options.get("rescore_model") else None,
    ).check()
    nlist = int(options["nlist"]) if options["nlist"] else None
    index = IndexSettings(
        exact_max=int(options["exact_max"]),
        pq_min=int(options["pq_min"]),
        nlist=nlist,
        nprobe=int(options["nprobe"]),
        search_batch_size=int(options["search_batch_size"]),
        seed=int(options["seed"]),
    )
    if index.nprobe < 1 or index.search_batch_size < 1 or (nlist is not None and nlist < 1):
        raise ConfigError("nprobe, nlist and search_batch_size must be at least 1")
    return mine, CorpusSettings(options["corpus_from"], corpus_files, str(options["corpus_field"])), index


def run(options: dict[str, Any]) -> StageSummary:
    """Mine every input part into `out` (the index is built once under OUT/_index and reused)."""
    if not options.get("inputs"):
        raise UsageError("mine needs at least one input directory")
    if not options.get("out"):
        raise UsageError("mine needs --out DIR")
    mine, corpus, index = settings_from(options)
    if options.get("estimate"):
        return estimate_mine(options)
    out = Path(options["out"])
    stage = MineStage(out, build_embedder(options), mine, corpus, index)
    return run_stage(stage, [Path(p) for p in options["inputs"]], out)


MINE = StageSpec(
    "mine", "Mine hard negatives with an embedding model and a FAISS index; score positives and existing negatives.",
    Inputs("Stage output directories with retrieval records."),
    (Option("out", Path, None, "Output directory.", flags=("--out", "-o")), *EMBED_OPTIONS, *MINE_OPTIONS,
     *pick(LLM_OPTIONS, *API_KEYS),  # the API keys and limits are read by --embedder api only
     *(o.but(panel=EMBED_PANEL) for o in ESTIMATE_OPTIONS)),
    run, api_embedder=api_embedder)
