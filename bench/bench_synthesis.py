"""Synthesis throughput: the check functions alone, and a whole stage against the loopback server (50 ms/request).

    python bench/bench_synthesis.py                    # 2,000 check pairs; 1,000 records through llm-negatives
    python bench/bench_synthesis.py --records 5000 --concurrency 256

The stage run is repeated on the same output folder with the manifest removed: every answer then comes from the
journal, which is the cost of resuming a part.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from openai_server import spawn_server_process  # noqa: E402

from synth.schema import Task, validate_row  # noqa: E402
from synth.store import write_part  # noqa: E402
from synth.synthesis import checks  # noqa: E402
from synth.synthesis.llm_negatives import LLM_NEGATIVES  # noqa: E402

WORDS = [
    "tide", "moon", "sun", "gravity", "ocean", "water", "pull", "align", "spring", "neap", "coast", "wave",
    "orbit", "earth", "force", "height", "cycle", "daily", "twice", "lunar", "solar", "bulge", "rotation",
    "basin", "harbour",
]


def passage(rng: random.Random, words: int = 60) -> str:
    sentences = [" ".join(rng.choice(WORDS) for _ in range(12)).capitalize() + "." for _ in range(words // 12)]
    return " ".join(sentences)


def bench_checks(pairs: int) -> tuple[str, float]:
    rng = random.Random(0)
    data = [(passage(rng), passage(rng)) for _ in range(pairs)]
    started = time.perf_counter()
    for source, output in data:
        band = checks.change_band(source, 0.3, 0.2)
        (
            checks.check_changed(source, output, band)
            or checks.check_length(source, output, 0.15)
            or checks.check_adjacent_copy(source, output)
            or checks.check_topic_shift(source, output, 0.5)
        )
    return "paraphrase checks on 60-word passages", pairs / (time.perf_counter() - started)


def bench_stage(records: int, concurrency: int) -> list[tuple[str, float]]:
    rng = random.Random(1)
    rows = [
        validate_row(
            Task.RETRIEVAL,
            {
                "task": "retrieval",
                "instruction": "i",
                "lang": "en",
                "source": "bench",
                "query": f"question {i} about tides",
                "positive": passage(rng),
            },
        )
        for i in range(records)
    ]
    with tempfile.TemporaryDirectory() as tmp, spawn_server_process(latency=0.05, api_key="k") as base_url:
        write_part(Path(tmp) / "in", Task.RETRIEVAL, "part-00000", rows)
        options = {
            **LLM_NEGATIVES.defaults(),
            "inputs": [f"{tmp}/in"],
            "out": f"{tmp}/out",
            "base_url": base_url,
            "api_key": "k",
            "model": "bench-model",
            "num": 1,
            "max_tries": 1,
            "concurrency": concurrency,
        }
        results = []
        for label in ("llm-negatives, fresh (records/s)", "llm-negatives, resumed from the journal (records/s)"):
            (Path(tmp) / "out" / "_manifest.json").unlink(missing_ok=True)
            started = time.perf_counter()
            LLM_NEGATIVES.run(options)
            results.append((label, records / (time.perf_counter() - started)))
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=128)
    args = parser.parse_args()
    rows = [bench_checks(args.pairs), *bench_stage(args.records, args.concurrency)]
    width = max(len(label) for label, _ in rows)
    print(f"{'measure'.ljust(width)}  per second")
    for label, rate in rows:
        print(f"{label.ljust(width)}  {rate:10,.0f}")


if __name__ == "__main__":
    main()
