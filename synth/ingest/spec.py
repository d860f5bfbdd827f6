"""Ingest as a registered stage: raw dataset files of any supported shape -> unified retrieval / STS / CLS shards."""

from __future__ import annotations

from typing import Any

from synth.ingest.options import INGEST_OPTIONS, ingest_options
from synth.ingest.runner import plan_ingest, run_ingest
from synth.registry import Inputs, StageSpec
from synth.stage import StageSummary


def run(options: dict[str, Any]) -> StageSummary:
    """The whole ingest from fully resolved options."""
    return run_ingest(ingest_options(options))


INGEST = StageSpec(
    "ingest", "Turn raw dataset files into unified Parquet shards (retrieval / STS / CLS).",
    Inputs("Input files (JSONL, CSV, TSV, Parquet; .gz ok) or folders.", required=False), INGEST_OPTIONS, run,
    plan=plan_ingest)
