"""The optional LLM judge: does the positive answer the query? A yes/no with a reason, as JSON, on the engine."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from synth.llm import ChatRequest, LLMEngine, LLMSettings
from synth.llm.journal import journal_path
from synth.prompts import PromptLibrary

TECHNIQUE = "judge"


class JudgeAnswer(BaseModel):
    """What the judge answers for one (query, positive) pair."""

    answers: bool = Field(description="true when the passage answers the query")
    reason: str = Field(description="one sentence explaining the decision")


@dataclass
class Verdict:
    """Keep, drop (with the judge's reason) or failed (the request kept failing: the row is retried next run)."""

    keep: bool
    reason: str = ""
    failed: bool = False


class JudgePrompt:
    """The judge's request for a row: what a run sends and what `--estimate` counts."""

    def __init__(self, options: dict[str, Any]):
        self.library = PromptLibrary(options.get("prompts"))
        self.schema = json.dumps(JudgeAnswer.model_json_schema(), ensure_ascii=False)
        self.library.check(TECHNIQUE, TECHNIQUE, {"query": "q", "positive": "p", "output_schema": self.schema})

    def render(self, row: dict[str, Any]) -> str:
        return self.library.for_lang(TECHNIQUE, row["lang"]).render(query=row["query"], positive=row["positive"],
                                                                    output_schema=self.schema)


class LLMJudge:
    """Judges retrieval rows through the shared engine; answers are journaled, so a rerun re-sends nothing."""

    def __init__(self, options: dict[str, Any]):
        self.prompt = JudgePrompt(options)
        self.settings = LLMSettings.from_options({**options, "temperature": 0.0})
        self.out = options["out"]
        self._engine: LLMEngine | None = None
        self.engine  # noqa: B018 - opened here, so that a missing endpoint stops the stage before it starts

    @property
    def engine(self) -> LLMEngine:
        """The engine, opened in the process that judges (a cluster's worker opens its own, on its node's journal)."""
        if self._engine is None:
            self._engine = LLMEngine(self.settings, journal=journal_path(self.out), stage="filter")
        return self._engine

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_engine": None}  # connections and the journal stay in this process

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    def __call__(self, rows: list[dict[str, Any]]) -> list[Verdict]:
        requests = [ChatRequest([{"role": "user", "content": self.prompt.render(row)}], response_model=JudgeAnswer)
                    for row in rows]
        verdicts = []
        for result in self.engine.chat_many(requests):
            if not result.ok or not isinstance(result.parsed, JudgeAnswer):
                verdicts.append(Verdict(keep=False, reason=result.error or "no answer", failed=True))
            else:
                verdicts.append(Verdict(keep=result.parsed.answers, reason=f"judge: {result.parsed.reason}"))
        return verdicts

    def used(self) -> bool:
        """Whether this process made the judge's engine (a cluster's driver never does)."""
        return self._engine is not None

    def endpoint_usage(self) -> dict[str, dict[str, Any]]:
        """Per-endpoint requests, failures, latency and cost, for the stage's manifest."""
        return self.engine.endpoint_usage()

    def usage(self, since: dict[str, int | float] | None = None) -> dict[str, int | float]:
        """The engine's counters (requests, tokens, cost), all or since an earlier snapshot, for per-part stats."""
        return self.engine.stats(since=since)
