"""`eval.json` and the card's "Evaluation" section: base against fine-tuned per metric, with unicode bars that
render in any Markdown viewer (GitHub, Hugging Face) without an image."""

from __future__ import annotations

from typing import Any

SECTION = "Evaluation"
BAR_WIDTH = 20
"""Characters of a bar at 1.0."""
EIGHTHS = " ▏▎▍▌▋▊▉"


def bar(value: float) -> str:
    """A horizontal bar of `value` in [0, 1], to an eighth of a character."""
    eighths = round(max(0.0, min(1.0, value)) * BAR_WIDTH * 8)
    full, rest = divmod(eighths, 8)
    return "█" * full + (EIGHTHS[rest] if rest else "") or "▏"


def deltas(base: dict[str, float], tuned: dict[str, float]) -> dict[str, float]:
    return {name: tuned[name] - base[name] for name in base}


def measured(eval_set: dict[str, Any]) -> str:
    """What the eval set measured, in words."""
    parts = []
    if eval_set["queries"]:
        parts.append(f"its {eval_set['queries']:,} queries searched its {eval_set['corpus']:,} documents "
                     "(exact cosine search)")
    if eval_set.get("sts_pairs"):
        parts.append(f"the Spearman correlation of the cosines of its {eval_set['sts_pairs']:,} STS pairs with "
                     "their scores")
    return " and ".join(parts)


def section_lines(result: dict[str, Any]) -> list[str]:
    """The Markdown of the "Evaluation" section, from an `eval.json` document."""
    settings, data = result["settings"], result["train"]
    rows = ["| metric | base | fine-tuned | Δ | base | fine-tuned |", "| --- | ---: | ---: | ---: | --- | --- |"]
    for name in result["base"]:
        base, tuned = result["base"][name], result["fine_tuned"][name]
        rows.append(f"| {name} | {base:.4f} | {tuned:.4f} | {tuned - base:+.4f} | `{bar(base)}` | `{bar(tuned)}` |")
    return [
        f"`synth eval` fine-tuned `{result['model_name']}` for {settings['steps']} steps "
        f"(batch {settings['batch_size']}, "
        f"learning rate {settings['learning_rate']:g}, hard negatives per retrieval row {settings['negatives']}, "
        f"seed {settings['seed']}, {result['device']}) on {data['retrieval_rows']:,} retrieval and "
        f"{data['sts_rows']:,} STS rows, and measured `{result['eval_set']['path']}` before and after: "
        f"{measured(result['eval_set'])}, in {result['seconds']['total']:.0f} s.",
        "",
        *rows,
        "",
        "Bars: 0 to 1. The numbers come from `eval.json` beside the evaluation.",
    ]
