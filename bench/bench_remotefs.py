"""A run directory on an object store against a local one: a querygen stage with `--out s3://...` on moto's S3
server (its own process, on loopback) and with a local path, and what a rerun costs on the same node and on a new one.

Against the loopback OpenAI server (its own process, 50 ms per request): RECORDS retrieval records in PARTS parts, one
querygen request each, on the local executor; each run in a process of its own. Then what a path costs with nothing
mounted: `storage.committed`, the hook every atomic write calls.

    nice -n 10 python bench/bench_remotefs.py                         # 20,000 records in 50 parts
    nice -n 10 python bench/bench_remotefs.py --records 2000 --parts 10
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from bench_ray import in_subprocess, pipeline, write_input
from openai_server import spawn_server_process
from s3_server import KEYS, S3Store, create_bucket

from synth import storage


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def moto_process() -> tuple[subprocess.Popen, str]:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"127.0.0.1:{port}"
    for _ in range(200):
        try:
            create_bucket(endpoint)
            return server, endpoint
        except OSError:
            time.sleep(0.05)
    server.kill()
    raise RuntimeError("moto's server did not start")


def run(pipeline_file: Path, out: str, copies: Path) -> dict:
    os.environ["SYNTH_REMOTE_CACHE"] = str(copies)
    return in_subprocess("--run", str(pipeline_file), out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--parts", type=int, default=50)
    args = parser.parse_args()
    os.environ.update(KEYS)
    server, endpoint = moto_process()
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp, spawn_server_process(latency=0.05, api_key="bench-key") as url:
            work = Path(tmp)
            inputs = work / "input"
            write_input(inputs, args.records, args.parts)
            path = pipeline(work, inputs, url, "local")
            store = S3Store(endpoint, "bench")
            rows.append(("local path", run(path, str(work / "local"), work / "copies-a")))
            rows.append(("s3://, first run", run(path, store.uri("run"), work / "copies-a")))
            rows.append(("s3://, rerun on the same node", run(path, store.uri("run"), work / "copies-a")))
            rows.append(("s3://, rerun on a new node", run(path, store.uri("run"), work / "copies-b")))
            objects = store.objects("run")
    finally:
        server.kill()
    print(f"{args.records:,} records in {args.parts} parts; the store holds {len(objects)} objects, "
          f"{sum(map(len, objects.values())) / 2**20:.1f} MiB\n")
    print("| run directory | fetch (load_plan) s | run s | parts made |")
    print("| --- | --- | --- | --- |")
    for name, found in rows:
        print(f"| {name} | {found['load_plan']:.2f} | {found['wall']:.1f} | {found['parts']} |")
    path = Path(tempfile.gettempdir()) / "bench-remotefs.parquet"
    calls = 1_000_000
    seconds = timeit.timeit(lambda: storage.committed(path), number=calls)
    print(f"\n`storage.committed` with nothing mounted: {seconds / calls * 1e9:.0f} ns per call")


if __name__ == "__main__":
    main()
