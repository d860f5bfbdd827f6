"""`synth llm-negatives`: N LLM-written hard negatives per (query, positive), appended with origin `llm`."""

from __future__ import annotations

from typing import Any

import typer

from synth.commands import synthesis_common as common
from synth.stage import StageSummary
from synth.synthesis.negatives import NEGATIVES_DEFAULTS, NegativesStage

DEFAULTS: dict[str, Any] = common.synthesis_defaults(**NEGATIVES_DEFAULTS)


def run(options: dict[str, Any]) -> StageSummary:
    return common.run_synthesis(NegativesStage, options)


def register(app: typer.Typer) -> None:
    common.register_stage_command(app, "llm-negatives", run, DEFAULTS, [
        common.band("length-tolerance", "Negative length within +-this share of the positive (default: 0.20)."),
        common.band("min-change", "A negative changes more than this share of the positive (default: 0.20)."),
    ], "Write hard negatives that deviate in meaning, add irrelevant detail or answer another aspect.")
