"""The `synth eval` run: check both inputs, measure the base model, fine-tune, measure again, write the results.

Everything is read and checked before anything is written. The evaluation is the stage's one part in its manifest,
so the executor's resume rule decides: a rerun with the same input bytes and settings does not train again, it
only refreshes the card sections from `eval.json`.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console

from synth.card import CARD, set_section
from synth.embed.local import pick_device
from synth.evaluation.evalset import EvalSet, load_eval_set
from synth.evaluation.metrics import STS_METRIC, retrieval_metrics, sts_spearman
from synth.evaluation.report import SECTION, deltas, section_lines
from synth.evaluation.traindata import TrainData, fingerprints, load_train_data, train_directory
from synth.evaluation.training import TrainSettings, encode, fine_tune, load_model
from synth.executor import Decision, PartPlan, decide
from synth.executor.lock import stage_lock
from synth.schema import Task
from synth.stage import StageSummary
from synth.store import Manifest, atomic_write_bytes, config_hash, list_parts

RESULT = "eval.json"
console = Console(stderr=True)


def measure(model: Any, eval_set: EvalSet, batch_size: int) -> dict[str, float]:
    """The retrieval metrics (when the eval set has queries) and the STS Spearman (when it has pairs)."""
    found: dict[str, float] = {}
    if eval_set.query_texts:
        queries = encode(model, eval_set.query_texts, batch_size)
        corpus = encode(model, eval_set.corpus_texts, batch_size)
        found.update(retrieval_metrics(queries, corpus, eval_set.relevant))
    if eval_set.sts:
        first, second, gold = zip(*eval_set.sts, strict=True)
        found[STS_METRIC] = sts_spearman(encode(model, list(first), batch_size), encode(model, list(second),
                                                                                      batch_size), gold)
    return {name: round(value, 6) for name, value in found.items()}


PART = "eval"
"""The stage's one part in its manifest (`retrieval/eval`): the evaluation, made from every input file."""


def eval_plan(train: Path, data: TrainData, eval_set: EvalSet) -> PartPlan:
    """The evaluation as the executor's one part: fingerprinted by the bytes of every training and eval file, so
    the executor's own resume decision (and `synth status`) says when an input changed."""
    files = fingerprints(data.files + eval_set.files())
    return PartPlan(Task.RETRIEVAL, PART, str(train), config_hash(files))


def load_inputs(train: Path, eval_path: Path, negatives: int) -> tuple[TrainData, EvalSet, PartPlan]:
    """Both inputs, checked (a one-line error otherwise), and the part they make."""
    eval_set = load_eval_set(eval_path)
    data = load_train_data(train, negatives)
    return data, eval_set, eval_plan(train, data, eval_set)


def evaluate(model_name: str, model_label: str, data: TrainData, eval_set: EvalSet, settings: TrainSettings,
             negatives: int) -> dict[str, Any]:
    """Base metrics, fine-tuning and fine-tuned metrics as the `eval.json` document (without its key)."""
    started = time.monotonic()
    device = pick_device()
    model = load_model(model_name, device, settings.max_seq_length)
    console.print(f"[eval] measuring the base model on {len(eval_set.query_texts)} queries and "
                  f"{len(eval_set.sts)} STS pairs", markup=False)
    base = measure(model, eval_set, settings.batch_size)
    measured = time.monotonic()
    console.print(f"[eval] fine-tuning for {settings.steps} steps on {device}", markup=False)
    losses = fine_tune(model, data, settings, device)
    trained = time.monotonic()
    tuned = measure(model, eval_set, settings.batch_size)
    return {
        "model": model_name, "model_name": model_label, "device": device,
        "settings": {**asdict(settings), "negatives": negatives},
        "train": {"retrieval_rows": len(data.retrieval), "sts_rows": len(data.sts),
                  "skipped_fewer_negatives": data.skipped},
        "eval_set": {"path": str(eval_set.directory), "queries": len(eval_set.query_texts),
                     "corpus": len(eval_set.corpus_texts),
                     **({"sts_pairs": len(eval_set.sts)} if eval_set.sts else {})},
        "base": base, "fine_tuned": tuned, "delta": {k: round(v, 6) for k, v in deltas(base, tuned).items()},
        "loss": {"first": round(losses[0], 6), "last": round(losses[-1], 6)},
        "seconds": {"base_eval": round(measured - started, 2), "training": round(trained - measured, 2),
                    "total": round(time.monotonic() - started, 2)},
    }


def write_cards(result: dict[str, Any], train: Path, out: Path) -> list[Path]:
    """The section in OUT/README.md, and in the training data's own card when it is a final directory with one."""
    lines = section_lines(result)
    cards = [out / CARD]
    final_card = train_directory(train) / CARD
    if final_card.is_file() and list_parts(final_card.parent):
        cards.append(final_card)
    for card in cards:
        set_section(card, SECTION, lines)
    return cards


def run_eval(train: Path, eval_path: Path, out: Path, model: str, model_label: str, settings: TrainSettings,
             negatives: int) -> StageSummary:
    """Evaluate (or find the evaluation of) `model` fine-tuned on `train`, against the eval set at `eval_path`."""
    data, eval_set, plan = load_inputs(train, eval_path, negatives)
    summary = StageSummary("eval", out, rows_in=len(data.retrieval) + len(data.sts))
    out.mkdir(parents=True, exist_ok=True)
    with stage_lock(out):
        manifest = Manifest(out, "eval")
        cfg_hash = manifest.set_config({"model": model, **asdict(settings), "negatives": negatives})
        if decide(manifest.parts.get(plan.key), plan, cfg_hash, out) is Decision.SKIP:
            console.print(f"[eval] {out / RESULT} holds this evaluation already: not trained again", markup=False)
            result = json.loads((out / RESULT).read_text(encoding="utf-8"))
            summary.skipped = 1
        else:
            result = evaluate(model, model_label, data, eval_set, settings, negatives)
            atomic_write_bytes(out / RESULT, (json.dumps(result, indent=1, ensure_ascii=False) + "\n").encode())
            manifest.record(plan.key, {"input": plan.input, "fingerprint": plan.fingerprint, "files": [RESULT],
                                       "rows_in": summary.rows_in, "rows_out": 0, "config_hash": cfg_hash,
                                       "seconds": result["seconds"]["total"]})
            summary.processed = 1
        write_cards(result, train, out)
    summary.stats = {f"{side} {name}": value for side in ("base", "fine_tuned") for name, value in result[side].items()}
    if data.skipped:
        summary.stats[f"skipped: fewer than {negatives} negatives"] = data.skipped
    return summary
