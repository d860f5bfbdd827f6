"""Every stage synth runs, in pipeline order: the one list that the CLI, `synth run` and the CLI reference read.

A new stage is one line here; its options, run and `needs_llm` live in its own domain module.
"""

from __future__ import annotations

from typing import Any

from synth.errors import ConfigError
from synth.evaluation.audit_spec import AUDIT
from synth.evaluation.spec import EVAL
from synth.export.spec import EXPORT
from synth.filtering.spec import FILTER
from synth.ingest.spec import INGEST
from synth.mining.spec import MINE
from synth.registry import StageSpec
from synth.split.spec import SPLIT
from synth.synthesis.augment import AUGMENT
from synth.synthesis.llm_negatives import LLM_NEGATIVES
from synth.synthesis.paraphrase import PARAPHRASE
from synth.synthesis.querygen import QUERYGEN

STAGES: tuple[StageSpec, ...] = (
    INGEST, PARAPHRASE, AUGMENT, LLM_NEGATIVES, QUERYGEN, MINE, AUDIT, FILTER, SPLIT, EXPORT, EVAL)


def stage_spec(use: Any) -> StageSpec:
    """The stage a pipeline's `use` names (`llm-negatives` or `llm_negatives`), or a one-line error."""
    name = str(use).replace("_", "-")
    for spec in STAGES:
        if spec.name == name:
            return spec
    raise ConfigError(f"unknown stage command {use!r} (known: {', '.join(s.name for s in STAGES)})")
