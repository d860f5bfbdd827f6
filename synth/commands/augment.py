"""`synth augment`: N topic-shifted (query, positive, hard negative) triples per retrieval record, new CLS examples."""

from __future__ import annotations

from typing import Any

import typer

from synth.commands import synthesis_common as common
from synth.stage import StageSummary
from synth.synthesis.augment import AUGMENT_DEFAULTS, AugmentStage

DEFAULTS: dict[str, Any] = common.synthesis_defaults(**AUGMENT_DEFAULTS)


def run(options: dict[str, Any]) -> StageSummary:
    return common.run_synthesis(AugmentStage, options)


def register(app: typer.Typer) -> None:
    common.register_stage_command(app, "augment", run, DEFAULTS, [
        common.flag("drop_source", common.DropSource),
        common.band("length-tolerance", "New query/passages within +-this share of the originals (default: 0.20)."),
        common.band("min-change", "The new query changes more than this share of the old one (default: 0.30)."),
        common.band("max-topic-overlap", "At most this share of content words shared with the source (default: 0.50)."),
        common.band("min-topic-similarity", "With an embedder: cosine to the source at least this (default: 0.30)."),
        common.band("max-topic-similarity", "With an embedder: cosine to the source at most this (default: 0.90)."),
        *common.EMBED_FLAGS,
    ], "Extend records to neighbouring topics: retrieval triples and new CLS examples (STS passes through).")
