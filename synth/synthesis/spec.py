"""The four LLM stages as registered stages: their shared options and one `synthesis_spec` that builds each spec.

A new LLM stage is its `SynthesisStage` subclass, its own options and one `synthesis_spec(...)` call in its module.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from synth.errors import UsageError
from synth.llm import LLMSettings, local_endpoint_if_needed
from synth.llm.estimate import ESTIMATE_OPTIONS
from synth.llm.settings import LLM_OPTIONS
from synth.registry import Inputs, Option, StageSpec, always
from synth.stage import StageSummary, run_stage
from synth.synthesis.base import SynthesisStage
from synth.synthesis.estimate import estimate_stage

PANEL = "Synthesis"
INPUTS = Inputs("Stage output directories (unified shards) to read.")
OUT = Option("out", Path, None, "Output directory.", flags=("--out", "-o"))
NUM = Option("num", int, 3, "Outputs per record.", flags=("--num", "-n"), min=1, panel=PANEL)
SHARED_OPTIONS: tuple[Option, ...] = (
    OUT,
    NUM,
    Option("max_tries", int, 20, "Requests per record before giving up.", min=1, panel=PANEL),
    Option("parts_in_flight", int, 4, "Parts whose requests stream at once: the next part starts while one "
           "finishes its slowest answers (outputs do not change).", min=1, panel=PANEL),
    *(o.but(panel=PANEL) for o in ESTIMATE_OPTIONS),
    Option("prompts", Path, None, "Folder of TECHNIQUE.LANG.jinja templates that replace or add to the built-in ones.",
           panel=PANEL),
)
"""Options every synthesis stage has besides the LLM options: outputs per record, the retry bound of the paper."""
DROP_SOURCE = Option("drop_source", bool, False, "Write only the new rows, not the input records.",
                     flags=("--drop-source/--keep-source",), panel=PANEL)


def band(key: str, default: float, help_text: str) -> Option:
    """A float bound of one of the stage's checks, shown in the synthesis panel."""
    return Option(key, float, default, help_text, min=0.0, panel=PANEL)


def run_synthesis(stage_class: type[SynthesisStage], options: dict[str, Any]) -> StageSummary:
    """Check options and templates (before any request), then run the stage against the endpoint."""
    if not options.get("inputs"):
        raise UsageError(f"{stage_class.name} needs at least one input directory")
    if not options.get("out"):
        raise UsageError(f"{stage_class.name} needs --out DIR")
    settings = LLMSettings.from_options(options)
    stage = stage_class(options, settings)
    inputs = [Path(p) for p in options["inputs"]]
    if options.get("estimate"):
        return estimate_stage(stage, inputs, settings, options.get("tokenizer"))
    with local_endpoint_if_needed(settings) as live:
        stage.settings = live
        return run_stage(stage, inputs, Path(options["out"]))


def synthesis_spec(
    stage_class: type[SynthesisStage], summary: str, own: tuple[Option, ...], shared: tuple[Option, ...] = ()
) -> StageSpec:
    """The stage's spec: `out`, `num`, `max_tries`, `prompts`, `drop_source`, its own options, the LLM options.

    `shared` replaces shared options by key (querygen's `num` means queries per passage, defaulting to 1). A stage
    whose own options do not include `drop_source` still reads it from config files, without a flag.
    """
    replaced = {o.key: o for o in shared}
    common = tuple(replaced.get(o.key, o) for o in SHARED_OPTIONS)
    keys = {o.key for o in own}
    tail = () if "drop_source" in keys else (DROP_SOURCE.but(config_only=True),)
    return StageSpec(stage_class.name, summary, INPUTS, (*common, *own, *LLM_OPTIONS, *tail),
                     partial(run_synthesis, stage_class), needs_llm=always)
