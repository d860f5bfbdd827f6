"""Query-positive score thresholds: a fixed cosine, or a percentile of the data's own scores.

A percentile (`p20`) is taken over the positive scores of records with the same task and origin, because cosine
scales differ between embedders: a fixed 0.7 that suits one model drops most real pairs under another.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

_PERCENTILE = re.compile(r"^p(\d+(?:\.\d+)?)$")


def check_threshold(value: Any) -> None:
    """A threshold is a number in [-1, 1] or `pNN` with NN in [0, 100]."""
    if isinstance(value, bool):
        raise ValueError(f"expected a cosine like 0.7 or a percentile like p20, got {value!r}")
    if isinstance(value, int | float):
        if not -1.0 <= value <= 1.0:
            raise ValueError(f"a cosine threshold must be in [-1, 1], got {value}")
        return
    match = _PERCENTILE.match(str(value).strip().lower())
    if not match or float(match.group(1)) > 100:
        raise ValueError(f"expected a cosine like 0.7 or a percentile like p20, got {value!r}")


def percentile_of(value: Any) -> float | None:
    """The percentile a threshold asks for, or None when it is a fixed cosine."""
    match = _PERCENTILE.match(str(value).strip().lower()) if isinstance(value, str) else None
    return float(match.group(1)) if match else None


def resolve_threshold(value: Any, scores: list[float]) -> float:
    """A fixed cosine as it is; a percentile as the score at that percentile (-inf without scores)."""
    percentile = percentile_of(value)
    if percentile is None:
        return float(value)
    return float(np.percentile(scores, percentile)) if scores else float("-inf")


def below_threshold(score: float | None, threshold: float) -> str | None:
    """Why a positive score fails the threshold, or None when it passes."""
    if score is None:
        return "no query-positive score"
    if score < threshold:
        return f"query-positive cosine {score:.4f} < {threshold:.4f}"
    return None
