"""Split as a registered stage: `synth split DIR --eval-fraction F --seed S --out OUT`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synth.errors import ConfigError, UsageError
from synth.executor import PartPlan
from synth.filtering.options import RULE_OPTIONS
from synth.registry import Inputs, Option, StageSpec, pick
from synth.split.stage import run_split, split_plans
from synth.stage import StageSummary

OPTIONS: tuple[Option, ...] = (
    Option("out", Path, None, "Where to write OUT/train/ and OUT/eval/ (with the BEIR files).", flags=("--out", "-o")),
    Option("eval_fraction", float, 0.1, "Share of records for eval, in (0, 1); whole groups move, so the achieved "
           "share is reported."),
    Option("seed", int, 0, "Seed of the group order: the same seed gives the same split."),
    *pick(RULE_OPTIONS, "near_dup_threshold",
          near_dup_threshold={"panel": None, "help": "MinHash Jaccard at which queries or passages share a group."}),
)


def fraction(options: dict[str, Any], key: str, high_included: bool) -> float:
    """The option as a float in (0, 1) (or (0, 1]), else a one-line error naming it."""
    value = options.get(key)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be a number, got {value!r}") from None
    if not (0.0 < number < 1.0 or (high_included and number == 1.0)):
        raise ConfigError(f"{key} must be between 0 and 1 (exclusive), got {value!r}")
    return number


def run(options: dict[str, Any]) -> StageSummary:
    """Split the one input directory into OUT/train and OUT/eval by leak-free groups."""
    source = SPLIT.input_dir(options)
    if not options.get("out"):
        raise UsageError("split needs --out DIR")
    seed = options.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    return run_split(source, Path(options["out"]), fraction(options, "eval_fraction", False), seed,
                     fraction(options, "near_dup_threshold", True))


def plan(options: dict[str, Any]) -> list[PartPlan]:
    """The parts a run of split with these options plans."""
    return split_plans(SPLIT.input_dir(options))


SPLIT = StageSpec(
    "split", "Split into train/ and eval/ with no document or near duplicate on both sides; eval also as BEIR.",
    Inputs("Data directory to split (the filter's output).", name="input_dir", many=False), OPTIONS, run,
    out_folder="split", plan=plan)
