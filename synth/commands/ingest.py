"""`synth ingest`: raw dataset files of any supported shape -> unified retrieval / STS / CLS shards."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from synth.commands.common import report_and_exit, stage_options
from synth.config import parse_pairs
from synth.ingest.options import ingest_options
from synth.ingest.readers import DEFAULT_MAX_RECORD_BYTES
from synth.ingest.runner import run_ingest
from synth.ingest.shapes import SHAPES
from synth.stage import StageSummary
from synth.store import PART_ROWS

DEFAULTS: dict[str, Any] = {
    "inputs": [],
    "out": None,
    "shape": None,
    "map": {},
    "lang": "auto",
    "instruction": None,
    "source": None,
    "format": None,
    "score_range": None,
    "both_directions": True,
    "joiner": {},
    "label_map": {},
    "chat_turns": "first",
    "max_record_bytes": DEFAULT_MAX_RECORD_BYTES,
    "part_rows": PART_ROWS,
    "seed": 0,
    "num_negatives": 3,
    "class_pool": 1000,
    "workers": 1,
}


def run(options: dict[str, Any]) -> StageSummary:
    """The whole ingest from fully resolved options."""
    return run_ingest(ingest_options(options))


def _pairs_or_none(values: list[str] | None, flag: str) -> dict[str, str] | None:
    return parse_pairs(values, flag) if values else None


def _joiners_or_none(values: list[str] | None) -> dict[str, str] | None:
    """`--joiner LANG=TEXT` keeps TEXT exactly (leading newlines and spaces matter), unlike `--map`."""
    if not values:
        return None
    joiners = {}
    for item in values:
        lang, sep, text = item.partition("=")
        if not sep or not lang.strip() or not text:
            raise typer.BadParameter(f"expected LANG=TEXT, got {item!r}", param_hint="--joiner")
        joiners[lang.strip()] = text
    return joiners


def register(app: typer.Typer) -> None:
    @app.command("ingest")
    def ingest(
        inputs: list[Path] = typer.Argument(None, help="Input files (JSONL, CSV, TSV, Parquet; .gz ok) or folders."),
        shape: str = typer.Option(None, "--shape", help=f"Input shape: {', '.join(SHAPES)}."),
        out: Path = typer.Option(None, "--out", "-o", help="Output stage directory."),
        mapping: list[str] = typer.Option(None, "--map", help="FIELD=COLUMN: read a shape field from another column."),
        lang: str = typer.Option(None, "--lang", help="Language code of the data; 'auto' (default): column or guess."),
        instruction: str = typer.Option(None, "--instruction", help="Task instruction (default: per task type)."),
        source: str = typer.Option(None, "--source", help="Dataset name in the `source` column (default: file stem)."),
        fmt: str = typer.Option(None, "--format", help="jsonl, csv, tsv or parquet (default: from the extension)."),
        score_range: str = typer.Option(None, "--score-range", help="sts-score: range of the scores, e.g. 0,5."),
        both_directions: bool = typer.Option(
            None, "--both-directions/--no-both-directions", help="STS/NLI: also emit (b, a) (default: on)."
        ),
        joiner: list[str] = typer.Option(
            None, "--joiner", help="reading: LANG=TEXT joiner between context and question."
        ),
        label_map: list[str] = typer.Option(None, "--label-map", help="RAW=LABEL: rename labels before checking them."),
        chat_turns: str = typer.Option(None, "--chat-turns", help="chat-qa: 'first' user/assistant pair or 'all'."),
        max_record_bytes: int = typer.Option(None, "--max-record-bytes", help="Larger records are rejects."),
        part_rows: int = typer.Option(None, "--part-rows", help=f"Input rows per output part (default {PART_ROWS})."),
        seed: int = typer.Option(None, "--seed", help="Seed of the CLS positive/negative sampling."),
        num_negatives: int = typer.Option(None, "--num-negatives", help="cls: negatives from other classes (3)."),
        class_pool: int = typer.Option(None, "--class-pool", help="cls: texts sampled per class to draw from (1000)."),
        workers: int = typer.Option(None, "--workers", help="Processes making parts in parallel (default 1)."),
        config: Path = typer.Option(None, "--config", help="TOML config file; its \\[ingest] table sets options."),
    ) -> None:
        """Turn raw dataset files into unified Parquet shards (retrieval / STS / CLS)."""
        flags = {
            "inputs": inputs or None,
            "shape": shape,
            "out": out,
            "map": _pairs_or_none(mapping, "--map"),
            "lang": lang,
            "instruction": instruction,
            "source": source,
            "format": fmt,
            "score_range": score_range,
            "both_directions": both_directions,
            "joiner": _joiners_or_none(joiner),
            "label_map": _pairs_or_none(label_map, "--label-map"),
            "chat_turns": chat_turns,
            "max_record_bytes": max_record_bytes,
            "part_rows": part_rows,
            "seed": seed,
            "num_negatives": num_negatives,
            "class_pool": class_pool,
            "workers": workers,
        }
        report_and_exit(run(stage_options("ingest", flags, DEFAULTS, config)))
