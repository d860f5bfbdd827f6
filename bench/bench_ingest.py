"""Time and peak memory (RSS) of `synth ingest` on short JSONL rows at growing sizes: memory should stay flat.

    python bench/bench_ingest.py                             # 100k, 1M and 3M rows, one process
    python bench/bench_ingest.py --rows 1000000 --workers 1 2  # one size, serial and with 2 worker processes

Input files are generated under bench/data/ (git-ignored) and reused; outputs go to bench/out/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
SYNTH = Path(sys.executable).with_name("synth")
QUESTIONS = ["How do I {} a {}?", "What is the best {} for a {}?", "怎么{}一个{}？", "Why does my {} {} so fast?"]
WORDS = ["fix", "clean", "paint", "bike", "garden", "phone", "cook", "soup", "kettle", "wash", "car", "learn", "song"]


def make_input(rows: int) -> Path:
    """`rows` short, distinct question/answer lines (about 110 bytes each), written once and reused."""
    path = HERE / "data" / f"qa_{rows}.jsonl"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for i in range(rows):
            a, b = WORDS[i % len(WORDS)], WORDS[(i // len(WORDS)) % len(WORDS)]
            question = QUESTIONS[i % len(QUESTIONS)].format(a, b)
            answer = f"Step {i}: start with the {b}, then {a} it carefully."
            fh.write(json.dumps({"question": question, "answer": answer}, ensure_ascii=False) + "\n")
    tmp.rename(path)
    return path


def run_once(path: Path, out: Path, workers: int) -> tuple[float, float, int]:
    """(seconds, peak RSS in MiB, exit code) of one `synth ingest` run; RSS of the main process, from wait4."""
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    process = subprocess.Popen(
        [
            str(SYNTH),
            "ingest",
            str(path),
            "--shape",
            "qa",
            "--lang",
            "en",
            "--out",
            str(out),
            "--workers",
            str(workers),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _pid, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    return seconds, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="*", default=[100_000, 1_000_000, 3_000_000])
    parser.add_argument("--workers", type=int, nargs="*", default=[1])
    args = parser.parse_args()
    table = Table(title="synth ingest: short JSONL rows (shape qa)")
    for column in ("rows", "workers", "input MiB", "seconds", "rows/s", "peak RSS MiB", "exit"):
        table.add_column(column, justify="right")
    for rows in args.rows:
        path = make_input(rows)
        size = path.stat().st_size / 2**20
        for workers in args.workers:
            seconds, peak, code = run_once(path, HERE / "out" / f"qa_{rows}", workers)
            speed = f"{rows / seconds:,.0f}"
            table.add_row(
                f"{rows:,}", str(workers), f"{size:,.0f}", f"{seconds:,.1f}", speed, f"{peak:,.0f}", str(code)
            )
    Console().print(table)


if __name__ == "__main__":
    main()
