"""Which hard negatives to drop: likely false negatives, and LLM negatives too close to the positive."""

from __future__ import annotations

import numpy as np

from synth.mining.rules import below_relative_margin


def false_negative(negative_score: float | None, positive_score: float | None, margin: float) -> str | None:
    """Qwen3's mask rule: a negative scoring above positive + margin is probably a positive."""
    if negative_score is None or positive_score is None:
        return None
    if negative_score > round(positive_score + margin, 9):  # 0.7 + 0.1 must not be 0.7999...
        return f"negative cosine {negative_score:.4f} > positive {positive_score:.4f} + {margin}"
    return None


def over_relative_margin(negative_score: float | None, positive_score: float | None, relative: float) -> str | None:
    """The miner's TopK-PercPos rule (NV-Retriever), applied to LLM-written negatives: below positive x (1 - r)."""
    if negative_score is None or positive_score is None:
        return None
    if not below_relative_margin(np.array([[negative_score]]), np.array([positive_score]), relative)[0, 0]:
        return f"negative cosine {negative_score:.4f} not below positive {positive_score:.4f} x (1 - {relative})"
    return None
