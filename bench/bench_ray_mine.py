"""The mine stage through the Ray executor against the local one: its corpus embedded by the model actors (in
`prepare`) or by the driver, then its parts. The shipped MiniLM model on the CPU, a fresh embedding cache per run.

RECORDS retrieval records in PARTS parts; their positives are the corpus. Prints the wall time of each run and the
corpus texts embedded per second of it, and checks that both runs mined the same records.

    nice -n 10 python bench/bench_ray_mine.py                         # 4,000 records in 8 parts, 2 actors
    nice -n 10 python bench/bench_ray_mine.py --records 20000 --actors 4
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from embed_fixtures import minilm_path  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from synth.cli import app  # noqa: E402
from synth.executor import ExecutorSettings, using_executor  # noqa: E402
from synth.store import iter_rows, write_part  # noqa: E402

TOPICS = ["text editor", "web browser", "image viewer", "music player", "archive tool", "database server"]


def write_input(directory: Path, records: int, parts: int) -> None:
    from pipeline_fixtures import retrieval

    per_part = -(-records // parts)
    for part in range(parts):
        rows = [retrieval(f"which {TOPICS[i % 6]} is number {i}?",
                          f"Package {i} is a {TOPICS[i % 6]} with feature {i % 97} and option {i % 13}.")
                for i in range(part * per_part, min(records, (part + 1) * per_part))]
        write_part(directory, "retrieval", f"part-{part:05d}", rows)


def run_mine(inputs: Path, out: Path, cache: Path, settings: ExecutorSettings) -> tuple[float, list[dict]]:
    started = time.perf_counter()
    with using_executor(settings):
        result = CliRunner().invoke(app, ["mine", str(inputs), "--out", str(out), "--embed-model", minilm_path(),
                                          "--embed-cache", str(cache), "-n", "3"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return time.perf_counter() - started, sorted(iter_rows(out), key=lambda r: r["id"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=4000)
    parser.add_argument("--parts", type=int, default=8)
    parser.add_argument("--actors", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_input(work / "in", args.records, args.parts)
        runs = {"local": ExecutorSettings(), "ray": ExecutorSettings(kind="ray", model_actors=args.actors)}
        results = {name: run_mine(work / "in", work / name, work / f"cache-{name}", settings)
                   for name, settings in runs.items()}
        corpus = json.loads((work / "local" / "_manifest.json").read_text())["index"]["n_items"]
    assert results["local"][1] == results["ray"][1], "the two executors mined different records"
    print(f"mine: {args.records} records in {args.parts} parts, corpus {corpus} texts, {args.actors} Ray actors")
    print(f"{'executor':<10}{'wall s':>10}{'corpus texts/s':>16}")
    for name, (seconds, _) in results.items():
        print(f"{name:<10}{seconds:>10.1f}{corpus / seconds:>16.0f}")


if __name__ == "__main__":
    main()
