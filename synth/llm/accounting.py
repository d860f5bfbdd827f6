"""Token, request, retry, failure and cost counters of one engine (one stage)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class Accounting:
    """Running totals; `cost_usd` uses a price table of USD per 1M input and output tokens per model.

    `requests` are HTTP requests that reached the server (retries included), `unreachable` attempts that never
    did, `answered` requests the server answered with a result, `from_journal` answers read back from the journal.
    """

    requests: int = 0
    unreachable: int = 0
    answered: int = 0
    from_journal: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: int = 0
    reasks: int = 0
    failures: int = 0
    rate_limited: int = 0
    cost_usd: float = 0.0

    def add_usage(self, prompt: int, completion: int, price: dict[str, float] | None) -> None:
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        if price:
            self.cost_usd += (prompt * price.get("input", 0.0) + completion * price.get("output", 0.0)) / 1e6

    def as_dict(self) -> dict[str, int | float]:
        data = asdict(self)
        data["cost_usd"] = round(self.cost_usd, 6)
        return data

    def since(self, earlier: dict[str, int | float]) -> dict[str, int | float]:
        """Counters accumulated after the snapshot `earlier` (for per-part stats in a manifest)."""
        now = self.as_dict()
        delta = {key: value - earlier.get(key, 0) for key, value in now.items()}
        delta["cost_usd"] = round(delta["cost_usd"], 6)
        return delta


PART_STATS_PREFIX = "llm_"
"""Engine counters in a part's stats carry this prefix, apart from the stage's own counts of its work."""


def as_part_stats(counters: dict[str, int | float]) -> dict[str, int | float]:
    """Engine counters for one part (from `LLMEngine.stats(since=...)`) as keys of that part's manifest stats."""
    return {PART_STATS_PREFIX + key: value for key, value in counters.items()}
