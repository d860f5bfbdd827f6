"""Time and peak memory (RSS) of `synth ingest` on short JSONL rows at growing sizes: memory should stay flat.

    python bench/bench_ingest.py                             # 100k, 1M and 3M rows, one process
    python bench/bench_ingest.py --rows 1000000 --workers 1 2  # one size, serial and with 2 worker processes
    python bench/bench_ingest.py --rows 1000000 --row-by-row   # without the vectorised path, to compare

Beside each size, pyarrow's own `read_json` of the same file, in the same run, is the reference speed; the load
average (1 minute) before and after the runs comes with the table, since the numbers depend on it.

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


def run_once(path: Path, out: Path, workers: int, row_by_row: bool) -> tuple[float, float, int]:
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
            "--row-by-row" if row_by_row else "--vectorised",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _pid, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    return seconds, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


READ_JSON = """
import sys, time
import pyarrow.json
started = time.perf_counter()
rows = pyarrow.json.read_json(sys.argv[1]).num_rows
print(rows / (time.perf_counter() - started))
"""


def read_json_speed(path: Path) -> float:
    """Rows a second of pyarrow's `read_json` reading the whole file (after the ingest read it: cached), in a
    process of its own, since a child's peak RSS starts from its parent's and the table is large."""
    result = subprocess.run([sys.executable, "-c", READ_JSON, str(path)], capture_output=True, text=True, check=True)
    return float(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="*", default=[100_000, 1_000_000, 3_000_000])
    parser.add_argument("--workers", type=int, nargs="*", default=[1])
    parser.add_argument("--row-by-row", action="store_true", help="ingest without the vectorised path")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    path_name = "row-by-row" if args.row_by_row else "vectorised"
    columns = ("rows", "workers", "path", "input MiB", "seconds", "rows/s", "peak RSS MiB", "exit", "read_json rows/s")
    results = []
    for rows in args.rows:
        path = make_input(rows)
        size = path.stat().st_size / 2**20
        for workers in args.workers:
            seconds, peak, code = run_once(path, HERE / "out" / f"qa_{rows}", workers, args.row_by_row)
            results.append((f"{rows:,}", str(workers), path_name, f"{size:,.0f}", f"{seconds:,.1f}",
                            f"{rows / seconds:,.0f}", f"{peak:,.0f}", str(code), f"{read_json_speed(path):,.0f}"))
    title = (f"synth ingest: short JSONL rows (shape qa); {os.cpu_count()} CPUs, load average "
             f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="right")
    for result in results:
        table.add_row(*result)
    Console(width=150).print(table)


if __name__ == "__main__":
    main()
