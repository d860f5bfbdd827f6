"""What batch mode itself costs per request, apart from the provider's wait: collecting the requests a stage cannot
answer (the engine's batch hook: key, body, journal lookup), writing them as Batch JSONL split at the limits, and
reading an output file of the same size back into the journal. Then a whole round trip through the loopback Files
and Batches server (tests/batch_server.py, no waiting between states) next to the same requests sent online.

    python bench/bench_batch.py                     # 50,000 requests for the machinery, 2,000 for the round trip
    python bench/bench_batch.py --requests 10000 --round-trip 500
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from batch_server import BatchServer  # noqa: E402

from synth.llm import ChatRequest, LLMEngine, LLMSettings  # noqa: E402
from synth.llm.batch.collector import Collector  # noqa: E402
from synth.llm.batch.driver import run_batched  # noqa: E402
from synth.llm.batch.files import import_results, parse_lines, split_files  # noqa: E402
from synth.llm.batch.store import BatchStore  # noqa: E402
from synth.llm.engine import BATCH_COLLECTOR  # noqa: E402
from synth.stage import StageSummary  # noqa: E402

MODEL = "bench-model"


def requests(n: int) -> list[ChatRequest]:
    return [ChatRequest([{"role": "user", "content": f"Paraphrase sentence number {i}: the tides follow the moon."}])
            for i in range(n)]


def answer_line(key: str, i: int) -> str:
    message = {"role": "assistant", "content": f"answer {i}"}
    body = {"id": f"c{i}", "object": "chat.completion", "model": MODEL,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25}}
    return json.dumps({"id": f"r{i}", "custom_id": key, "response": {"status_code": 200, "body": body}, "error": None})


def machinery(n: int, work: Path) -> list[tuple[str, float]]:
    """Seconds for each step of one batch round of `n` requests, all local."""
    settings = LLMSettings.from_options({"base_url": "http://offline.invalid/v1", "model": MODEL})
    store = BatchStore(work / "_journal.sqlite")
    collector = Collector(store)
    token = BATCH_COLLECTOR.set(collector)
    started = time.perf_counter()
    with LLMEngine(settings, journal=work / "_journal.sqlite", progress=False) as engine:
        engine.chat_many(requests(n))
    collector.flush()
    BATCH_COLLECTOR.reset(token)
    steps = [("collect (engine hook) and journal", time.perf_counter() - started)]
    started = time.perf_counter()
    files = split_files(store.pending(), 50_000, 200_000_000)
    steps.append((f"write Batch JSONL ({len(files)} file, {sum(len(f[2]) for f in files) / 1e6:.1f} MB)",
                  time.perf_counter() - started))
    output = "\n".join(answer_line(key, i) for i, (key, _, _) in enumerate(store.pending())).encode()
    started = time.perf_counter()
    done = import_results(store, parse_lines(output, "bench"), settings)
    store.settle(done.answered, done.errors, settings.max_attempts)
    steps.append(("read the output file into the journal", time.perf_counter() - started))
    store.close()
    return steps


def round_trip(n: int, work: Path) -> list[tuple[str, float, int]]:
    """Wall seconds and batches for `n` requests online and in batch mode against the loopback server."""
    rows = []
    with BatchServer(step_seconds=0.0, api_key="bench-key", model=MODEL) as server:
        for mode in ("online", "batch"):
            out = work / mode
            options = {"base_url": server.base_url, "api_key": "bench-key", "model": MODEL, "mode": mode,
                       "batch_poll": 0.05, "out": str(out)}

            def ask(given: dict[str, Any], out: Path = out) -> StageSummary:
                with LLMEngine(LLMSettings.from_options(given), journal=out / "_journal.sqlite",
                               progress=False) as engine:
                    engine.chat_many(requests(n))
                return StageSummary("bench", out)

            started = time.perf_counter()
            run_batched(ask, options, "bench") if mode == "batch" else ask(options)
            rows.append((mode, time.perf_counter() - started, len(server.batches)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--round-trip", type=int, default=2_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(f"| step ({args.requests:,} requests) | seconds | requests/s |")
        print("| --- | --- | --- |")
        for name, seconds in machinery(args.requests, Path(tmp)):
            print(f"| {name} | {seconds:.2f} | {args.requests / seconds:,.0f} |")
        print()
        print(f"| mode ({args.round_trip:,} requests, loopback server) | seconds | batches |")
        print("| --- | --- | --- |")
        for mode, seconds, batches in round_trip(args.round_trip, Path(tmp)):
            print(f"| {mode} | {seconds:.2f} | {batches} |")


if __name__ == "__main__":
    main()
