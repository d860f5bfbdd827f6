"""Round-trip consistency of `synth mine` on Debian package descriptions: share of records kept and false negatives.

Data: the apt translation index (`apt-get update -o Acquire::Languages=en` fetches
/var/lib/apt/lists/*_main_i18n_Translation-en*). A contiguous block of packages in archive order keeps package
families together (libfoo1, libfoo-dev, foo-doc), whose long descriptions are near-identical: the known
false negatives of mining. Each short description stands in for a generated query (origin `querygen`) of its long
description (the positive); every long description is a candidate.

    HF_HUB_OFFLINE=1 python bench/bench_roundtrip.py --limit 3000

For each `--roundtrip-k` (0 = off) the table gives the share of records kept, and among the negatives mined for the
kept records those that are near-duplicates of the positive: word-set Jaccard >= 0.8 with it (measured on words,
independently of the embedder), exact duplicates aside (the `duplicate` rule removes them).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from bench_language import descriptions, read_index  # noqa: E402

from synth.cli import app  # noqa: E402
from synth.mining.options import MINE_DEFAULTS  # noqa: E402
from synth.schema import DEFAULT_INSTRUCTIONS, Task, validate_row  # noqa: E402
from synth.store import iter_rejects, iter_rows, write_part  # noqa: E402

TRANSLATION = Path("/var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_i18n_Translation-en.lz4")
NEAR_DUPLICATE_JACCARD = 0.8


def words(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"\w+", text.casefold()))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def records(path: Path, offset: int, limit: int) -> list[dict]:
    """`limit` consecutive (title, description) pairs from `offset`, as generated retrieval records."""
    pairs = descriptions(read_index(path), "en")[offset : offset + limit]
    if not pairs:
        sys.exit(f"no descriptions in {path}: run `apt-get update -o Acquire::Languages=en`")
    return [validate_row(Task.RETRIEVAL, {"task": "retrieval", "instruction": DEFAULT_INSTRUCTIONS[Task.RETRIEVAL],
                                          "lang": "en", "source": "debian", "origin": "querygen", "query": short,
                                          "positive": long[:2000]})
            for short, long in pairs]


def mine(src: Path, out: Path, cache: Path, k: int) -> float:
    started = time.perf_counter()
    app(["mine", str(src), "--out", str(out), "--embed-cache", str(cache), "--roundtrip-k", str(k),
         "--query-format", "{query}"], standalone_mode=False)
    return time.perf_counter() - started


def measure(out: Path, total: int) -> dict:
    rows = list(iter_rows(out))
    near = mined = 0
    for row in rows:
        positive = words(row["positive"])
        for text, origin in zip(row["negatives"], row["negative_origins"], strict=True):
            if origin == "mined":
                mined += 1
                near += text.strip() != row["positive"].strip() and jaccard(words(text), positive) >= \
                    NEAR_DUPLICATE_JACCARD
    rejects = list(iter_rejects(out))
    examples = [f"{json.loads(r['record'])['query']!r}: {r['reason']}" for r in rejects[:: max(1, len(rejects) // 6)]]
    return {"kept": len(rows), "share": len(rows) / total, "mined": mined, "near_dup": near,
            "near_dup_per_1k": 1000 * near / max(mined, 1), "rejects": len(rejects), "examples": examples[:6]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--translation", type=Path, default=TRANSLATION)
    parser.add_argument("--offset", type=int, default=20_000)
    parser.add_argument("--limit", type=int, default=3000)
    parser.add_argument("--ks", default="0,1,5,10,20,50")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    rows = records(args.translation, args.offset, args.limit)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        src, cache = Path(tmp) / "in", Path(tmp) / "cache"
        write_part(src, "retrieval", "part-00000", rows)
        for k in (int(x) for x in args.ks.split(",")):
            seconds = mine(src, Path(tmp) / f"out-k{k}", cache, k)
            results.append({"k": k, "seconds": round(seconds, 1), **measure(Path(tmp) / f"out-k{k}", len(rows))})
    table = Table(title=f"round trip on {len(rows)} Debian titles -> descriptions (MiniLM, exact index)")
    for column in ("roundtrip_k", "kept", "share kept", "mined negatives", "near-dup negatives", "per 1k mined",
                   "seconds"):
        table.add_column(column, justify="right")
    for r in results:
        table.add_row("off" if r["k"] == 0 else str(r["k"]), str(r["kept"]), f"{r['share']:.1%}", str(r["mined"]),
                      str(r["near_dup"]), f"{r['near_dup_per_1k']:.1f}", str(r["seconds"]))
    console = Console(width=140)
    console.print(table)
    for r in results:
        if r["k"] == MINE_DEFAULTS["roundtrip_k"]:
            console.print(f"dropped at the default k={r['k']}, a spread sample:", *r["examples"], sep="\n  ")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
