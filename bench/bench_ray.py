"""A querygen stage through the Ray executor against the local one, and the capacity of the cluster's budget actor.

Against the loopback OpenAI server (its own process, 50 ms per request): RECORDS retrieval records in PARTS parts, one
querygen request each. Each executor runs in a process of its own (requests/s, wall time, peak memory of the driver
process); the overhead per part is measured with one-row parts. Then the budget actor: leases per second it answers
to WORKERS tasks asking one at a time, which with chunked leases is requests/s times the chunk.

    nice -n 10 python bench/bench_ray.py                              # 100,000 records in 100 parts
    nice -n 10 python bench/bench_ray.py --records 5000 --parts 10 --tiny-parts 50
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from openai_server import spawn_server_process  # noqa: E402

from synth.store import write_part  # noqa: E402

CONCURRENCY = 64
LATENCY = 0.05


def write_input(directory: Path, records: int, parts: int) -> None:
    from pipeline_fixtures import retrieval

    per_part = -(-records // parts)
    for part in range(parts):
        rows = [retrieval(f"question {part}-{i} about topic {i}?", f"passage {part}-{i} on topic {i}, long enough.")
                for i in range(part * per_part, min(records, (part + 1) * per_part))]
        if rows:
            write_part(directory, "retrieval", f"part-{part:05d}", rows)


def pipeline(directory: Path, inputs: Path, base_url: str, kind: str) -> Path:
    path = directory / f"{kind}.toml"
    path.write_text(f"""
name = "bench"
[llm]
base_url = "{base_url}"
api_key = "bench-key"
model = "bench-model"
concurrency = {CONCURRENCY}
[executor]
kind = "{kind}"
[[stage]]
use = "querygen"
inputs = ["{inputs}"]
num = 1
max_tries = 1
""", encoding="utf-8")
    return path


def run_one(pipeline_file: Path, out: str) -> dict[str, Any]:
    """One run in this process (the driver): wall time (and that of loading the plan), requests sent, peak RSS."""
    from synth.pipeline.plan import load_plan
    from synth.pipeline.runner import run_plan

    loading = time.monotonic()
    plan = load_plan(pipeline_file, out)  # a run directory on an object store is fetched here
    loaded = time.monotonic() - loading
    if plan.executor.kind == "ray":
        import ray

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    started = time.monotonic()
    summary = run_plan(plan, plan.stages)[0]
    wall = time.monotonic() - started
    requests = summary.stats.get("llm_requests", 0)
    return {"wall": wall, "load_plan": loaded, "requests": requests, "parts": summary.processed,
            "driver_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def budget_capacity(workers: int, seconds: float) -> dict[str, Any]:
    """Leases per second one budget actor answers to `workers` tasks that each wait for every answer."""
    import ray

    from synth.executor.ray_budget import BudgetActor

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    actor = ray.remote(BudgetActor).options(num_cpus=0).remote(1e12, None)

    @ray.remote(num_cpus=0)
    def lease_for(actor: Any, seconds: float) -> int:
        count, end = 0, time.monotonic() + seconds
        while time.monotonic() < end:
            ray.get(actor.lease.remote(1, 0.0))
            count += 1
        return count

    ray.get(lease_for.remote(actor, 1.0))  # warm up
    started = time.monotonic()
    leases = sum(ray.get([lease_for.remote(actor, seconds) for _ in range(workers)]))
    return {"workers": workers, "leases_per_s": leases / (time.monotonic() - started)}


def in_subprocess(*args: str) -> dict[str, Any]:
    result = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def compare(records: int, parts: int, base_url: str, work: Path) -> dict[str, dict[str, Any]]:
    inputs = work / f"input-{records}-{parts}"
    write_input(inputs, records, parts)
    found = {}
    for kind in ("local", "ray"):
        found[kind] = in_subprocess("--run", str(pipeline(work, inputs, base_url, kind)), str(work / f"out-{kind}"))
        shutil.rmtree(work / f"out-{kind}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--parts", type=int, default=100)
    parser.add_argument("--tiny-parts", type=int, default=200, help="one-row parts for the overhead per part")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4], help="tasks leasing at once")
    parser.add_argument("--run", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--budget", nargs=2, type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        print(json.dumps(run_one(Path(args.run[0]), args.run[1])))  # a path or a URI (bench_remotefs.py)
        return
    if args.budget:
        print(json.dumps(budget_capacity(int(args.budget[0]), args.budget[1])))
        return
    with tempfile.TemporaryDirectory() as tmp, spawn_server_process(latency=LATENCY, api_key="bench-key") as url:
        work = Path(tmp)
        big = compare(args.records, args.parts, url, work)
        tiny = compare(args.tiny_parts, args.tiny_parts, url, work)
    print(f"querygen, {args.records:,} records in {args.parts} parts, concurrency {CONCURRENCY}, "
          f"server latency {LATENCY * 1000:.0f} ms")
    print("| executor | wall s | requests/s | driver peak RSS MB | wall per 1-row part ms |")
    print("| --- | --- | --- | --- | --- |")
    for kind in ("local", "ray"):
        run, small = big[kind], tiny[kind]
        print(f"| {kind} | {run['wall']:.1f} | {run['requests'] / run['wall']:,.0f} | {run['driver_rss_mb']:.0f} | "
              f"{small['wall'] / small['parts'] * 1000:.0f} |")
    print("\nbudget actor: leases answered per second (each task waits for its answer)")
    print("| tasks | leases/s | requests/s at chunk 1 | at chunk 16 |")
    print("| --- | --- | --- | --- |")
    for workers in args.workers:
        found = in_subprocess("--budget", str(workers), "5")
        print(f"| {workers} | {found['leases_per_s']:,.0f} | {found['leases_per_s']:,.0f} | "
              f"{found['leases_per_s'] * 16:,.0f} |")


if __name__ == "__main__":
    main()
