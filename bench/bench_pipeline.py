"""End-to-end time of whole pipelines (`synth run`), stage by stage.

    python bench/bench_pipeline.py --records 100000     # ingest, paraphrase, llm-negatives, mine, filter, export
    python bench/bench_pipeline.py --sample             # data_samples/pipeline.toml on the bundled SmolLM2-135M

The large run talks to the loopback OpenAI-compatible test server (tests/openai_server.py) in its own process, for
chat and for /v1/embeddings (`embedder = "api"`), so it measures synth itself, not a model. Inputs are generated
under bench/data/ and reused; runs go to bench/out/. Each stage runs as its own `synth run --from S --to S` process,
so every time includes process start-up (about 3 s of imports).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SYNTH = Path(sys.executable).with_name("synth")
sys.path.insert(0, str(ROOT / "tests"))

from openai_server import spawn_server_process  # noqa: E402

VOCABULARY = [
    "river", "garden", "engine", "kettle", "violin", "harbour", "pepper", "lantern", "meadow", "copper",
    "bridge", "orchard", "signal", "canyon", "ledger", "pillow", "tractor", "comet", "saddle", "quarry",
    "walnut", "beacon", "ribbon", "glacier", "tunnel", "falcon", "marble", "velvet", "anchor", "cactus",
    "turbine", "pebble", "willow", "ember", "lattice", "compass", "thistle",
]

PIPELINE = """
name = "bench-{records}"
[llm]
base_url = "{base_url}"
api_key = "bench-key"
model = "test-model"
concurrency = {concurrency}
max_attempts = 3
[embedder]
embedder = "api"
embed_model = "test-model"
embed_base_url = "{base_url}"
embed_batch_size = 256
embed_cache = "{cache}"
query_format = "{{query}}"

[[stage]]
use = "ingest"
inputs = ["{data}"]
shape = "qa"
lang = "en"
[[stage]]
use = "paraphrase"
num = 1
max_tries = 1
[[stage]]
use = "llm-negatives"
num = 1
max_tries = 1
[[stage]]
use = "mine"
num_negatives = 3
[[stage]]
use = "filter"
min_score = {{ source = "off", default = "p25" }}
[[stage]]
use = "export"
format = ["sentence-transformers", "flagembedding"]
"""


def make_input(records: int) -> Path:
    """`records` distinct question/answer pairs of random words (seeded), written once and reused."""
    path = HERE / "data" / f"pipeline_qa_{records}.jsonl"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(records)
    with open(path.with_suffix(".tmp"), "w", encoding="utf-8") as fh:
        for _ in range(records):
            question = " ".join(rng.choices(VOCABULARY, k=7)).capitalize() + "?"
            answer = " ".join(rng.choices(VOCABULARY, k=24)).capitalize() + "."
            fh.write(json.dumps({"question": question, "answer": answer}) + "\n")
    path.with_suffix(".tmp").rename(path)
    return path


def stage_names(pipeline: Path) -> list[str]:
    import tomllib

    tables = tomllib.loads(pipeline.read_text(encoding="utf-8"))["stage"]
    return [str(t.get("name") or t["use"]) for t in tables]


def run_stages(pipeline: Path, out: Path) -> list[tuple[str, float, int]]:
    """(stage, seconds, exit code) of each stage run as its own process, in order; logs go to OUT/../STAGE.log."""
    results = []
    for name in stage_names(pipeline):
        started = time.perf_counter()
        with open(out.parent / f"{name}.log", "w", encoding="utf-8") as log:
            command = [str(SYNTH), "run", str(pipeline), "--out", str(out), "--from", name, "--to", name]
            code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT).returncode
        results.append((name, time.perf_counter() - started, code))
    return results


def rows_out(out: Path, stage: str) -> str:
    manifest = out / ("final" if stage == "filter" else stage) / "_manifest.json"
    if not manifest.exists():
        return "-"
    return f"{json.loads(manifest.read_text())['totals']['rows_out']:,}"


def report(title: str, out: Path, results: list[tuple[str, float, int]]) -> None:
    table = Table(title=title)
    for column in ("stage", "seconds", "rows out", "exit"):
        table.add_column(column, justify="right" if column != "stage" else "left")
    for name, seconds, code in results:
        table.add_row(name, f"{seconds:.1f}", rows_out(out, name), str(code))
    table.add_row("[bold]total", f"[bold]{sum(s for _, s, _ in results):.1f}", "", "")
    Console().print(table)


def bench_loopback(records: int, concurrency: int) -> None:
    data = make_input(records)
    out = HERE / "out" / f"pipeline-{records}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    with spawn_server_process(api_key="bench-key", embedding_dim=64) as base_url:
        pipeline = out / "pipeline.toml"
        pipeline.write_text(
            PIPELINE.format(
                records=records, base_url=base_url, concurrency=concurrency, cache=out / "cache", data=data
            ),
            encoding="utf-8",
        )
        results = run_stages(pipeline, out / "run")
        rerun_started = time.perf_counter()
        subprocess.run(
            [str(SYNTH), "run", str(pipeline), "--out", str(out / "run")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        rerun = time.perf_counter() - rerun_started
    report(f"{records:,} records against the loopback server (concurrency {concurrency})", out / "run", results)
    print(f"rerun of the finished pipeline (everything skipped): {rerun:.1f} s")


def bench_sample() -> None:
    out = HERE / "out" / "pipeline-sample"
    shutil.rmtree(out, ignore_errors=True)
    pipeline = ROOT / "data_samples" / "pipeline.toml"
    started = time.perf_counter()
    code = subprocess.run(
        [str(SYNTH), "run", str(pipeline), "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    ).returncode
    seconds = time.perf_counter() - started
    report(
        "data_samples/pipeline.toml on the bundled SmolLM2-135M (one process)",
        out,
        [(name, 0.0, code) for name in stage_names(pipeline)],
    )
    print(f"sample pipeline end to end: {seconds:.1f} s (exit {code})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000, help="records of the loopback pipeline")
    parser.add_argument("--concurrency", type=int, default=64, help="LLM requests in flight")
    parser.add_argument("--sample", action="store_true", help="time data_samples/pipeline.toml instead")
    args = parser.parse_args()
    if args.sample:
        bench_sample()
    else:
        bench_loopback(args.records, args.concurrency)


if __name__ == "__main__":
    main()
