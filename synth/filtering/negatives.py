"""Which hard negatives to drop: likely false negatives, and LLM negatives too close to the positive."""

from __future__ import annotations


def false_negative(negative_score: float | None, positive_score: float | None, margin: float) -> str | None:
    """Qwen3's mask rule: a negative scoring above positive + margin is probably a positive."""
    if negative_score is None or positive_score is None:
        return None
    if negative_score > round(positive_score + margin, 9):  # 0.7 + 0.1 must not be 0.7999...
        return f"negative cosine {negative_score:.4f} > positive {positive_score:.4f} + {margin}"
    return None


def over_relative_margin(negative_score: float | None, positive_score: float | None, ratio: float) -> str | None:
    """NV-Retriever's TopK-PercPos, applied to LLM-written negatives: keep only below ratio x positive."""
    if negative_score is None or positive_score is None:
        return None
    if negative_score >= ratio * positive_score:
        return f"negative cosine {negative_score:.4f} >= {ratio} x positive {positive_score:.4f}"
    return None
