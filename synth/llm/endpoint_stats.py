"""Per-endpoint usage that folds across engines and processes: counts, cost and a bounded latency histogram.

An engine's endpoints keep their latencies in log-spaced buckets (each about 9% wide) instead of a list, so memory
stays bounded at any number of requests, and the usage of the engines of several processes (a cluster's workers,
one per part) adds up bucket by bucket into the stage's percentiles. A percentile is its bucket's geometric middle:
within 5% of the exact one.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable
from itertools import accumulate
from typing import Any

COUNTS = ("requests", "failures", "taken_out")
_FLOOR = 1e-4
"""Seconds at the lower edge of bucket 0 (faster answers count there)."""
_STEP = math.log(2) / 8
"""Log-width of a bucket: eight buckets per doubling."""

Usage = dict[str, Any]
"""One endpoint's raw usage: COUNTS, `cost_usd` and `latency` ({bucket: count}); JSON- and pickle-friendly."""


def empty() -> Usage:
    return {**dict.fromkeys(COUNTS, 0), "cost_usd": 0.0, "latency": {}}


def bucket(seconds: float) -> str:
    """The histogram bucket of a latency (a string key, as JSON keeps it)."""
    return str(max(0, int(math.log(max(seconds, _FLOOR) / _FLOOR) / _STEP)))


def fold(usages: Iterable[dict[str, Usage]]) -> dict[str, Usage]:
    """The sum, per endpoint, of several engines' usage ({endpoint: usage} each)."""
    total: dict[str, Usage] = {}
    for by_endpoint in usages:
        for name, usage in by_endpoint.items():
            into = total.setdefault(name, empty())
            for key in (*COUNTS, "cost_usd"):
                into[key] += usage.get(key, 0)
            for key, count in usage.get("latency", {}).items():
                into["latency"][key] = into["latency"].get(key, 0) + count
    return total


def since(now: dict[str, Usage], before: dict[str, Usage]) -> dict[str, Usage]:
    """What `now` added to an earlier snapshot `before` of the same engines (one part's share of a long-lived one)."""
    delta: dict[str, Usage] = {}
    for name, usage in now.items():
        old = before.get(name, empty())
        latency = {k: c - old["latency"].get(k, 0) for k, c in usage["latency"].items()}
        entry = {**{k: usage[k] - old[k] for k in (*COUNTS, "cost_usd")},
                 "latency": {k: c for k, c in latency.items() if c}}
        if entry["requests"] or entry["latency"]:
            delta[name] = entry
    return delta


def percentile(histogram: dict[str, int], q: float) -> float:
    """The `q` quantile of a latency histogram in milliseconds (0.0 when empty)."""
    if not histogram:
        return 0.0
    keys = sorted(histogram, key=int)
    ranks = list(accumulate(histogram[k] for k in keys))
    key = keys[bisect_right(ranks, int(q * ranks[-1]))]
    return round(1000 * _FLOOR * math.exp((int(key) + 0.5) * _STEP), 1)


def summary(usage: Usage) -> dict[str, Any]:
    """What the manifest and `synth status` show of one endpoint: counts, latency p50/p90/p99 in ms, cost."""
    histogram = usage["latency"]
    return {**{k: usage[k] for k in COUNTS}, "latency_ms_p50": percentile(histogram, 0.5),
            "latency_ms_p90": percentile(histogram, 0.9), "latency_ms_p99": percentile(histogram, 0.99),
            "cost_usd": round(usage["cost_usd"], 6)}


def summaries(by_endpoint: dict[str, Usage]) -> dict[str, dict[str, Any]]:
    return {name: summary(usage) for name, usage in by_endpoint.items()}
