"""Score distributions as small JSON summaries (quantiles and a fixed-bin histogram) for manifests and cards."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

HIST_EDGES = np.linspace(-1.0, 1.0, 41)
"""Bins of 0.05 over the cosine range, the same for every run so histograms compare."""


def summarise(scores: Iterable[float | None]) -> dict[str, Any]:
    """Count, mean, quantiles and histogram counts of the non-null scores."""
    values = np.array([s for s in scores if s is not None], dtype=np.float64)
    if values.size == 0:
        return {"count": 0}
    counts, _ = np.histogram(np.clip(values, -1.0, 1.0), bins=HIST_EDGES)
    quantiles = np.percentile(values, [10, 50, 90])
    return {
        "count": int(values.size),
        "mean": round(float(values.mean()), 4),
        "p10": round(float(quantiles[0]), 4),
        "p50": round(float(quantiles[1]), 4),
        "p90": round(float(quantiles[2]), 4),
        "hist": [int(c) for c in counts],
    }
