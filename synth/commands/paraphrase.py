"""`synth paraphrase`: N rewrites per record that keep meaning, style and length but change the wording."""

from __future__ import annotations

from typing import Any

import typer

from synth.commands import synthesis_common as common
from synth.stage import StageSummary
from synth.synthesis.paraphrase import PARAPHRASE_DEFAULTS, ParaphraseStage

DEFAULTS: dict[str, Any] = common.synthesis_defaults(**PARAPHRASE_DEFAULTS)


def run(options: dict[str, Any]) -> StageSummary:
    return common.run_synthesis(ParaphraseStage, options)


def register(app: typer.Typer) -> None:
    common.register_stage_command(app, "paraphrase", run, DEFAULTS, [
        common.flag("drop_source", common.DropSource),
        common.band("sentence-change", "A one-sentence rewrite changes more than this share (default: 0.30)."),
        common.band("paragraph-change", "A paragraph rewrite changes more than this share (default: 0.20)."),
        common.band("length-tolerance", "Rewrite length within +-this share of the source (default: 0.15)."),
    ], "Paraphrase records: retrieval (query, positive), STS (text_a, text_b) and CLS texts.")
