"""Near-duplicate MinHash side by side: synth's filter (rensa), datasketch and bare rensa, on Debian descriptions.

    python bench/bench_dedup.py                          # 20,000 descriptions, 2,000 of them with a planted copy
    python bench/bench_dedup.py --docs 60000 --planted 6000 --rounds 3

Needs the `bench` extra (datasketch) and Debian's English package descriptions:
`apt-get update -o Acquire::Languages=en` fetches /var/lib/apt/lists/*_i18n_Translation-en*.

Every implementation gets the same texts and the same features (synth's normalised text, character 5-grams),
64 permutations and the filter's threshold, and runs in its own process (so its memory is its own):
- signatures/s: one text at a time, the way the filter meets records;
- scan: the filter's first-occurrence-wins pass (signature, LSH candidates, earliest candidate whose estimate
  reaches the threshold, else add the text), and the resident memory its index holds after the scan;
- recall: planted near-copies (true Jaccard to their source >= threshold) that the scan flags;
- precision: flagged texts whose match really reaches the threshold (exact Jaccard of the 5-gram sets),
  which also credits the near-duplicates Debian's descriptions already hold.
"""

from __future__ import annotations

import argparse
import glob
import json
import random
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from synth.filtering.minhash import BANDS, NUM_PERM, shingles

HERE = Path(__file__).resolve().parent
TRANSLATIONS = "/var/lib/apt/lists/*_i18n_Translation-en*"
IMPLEMENTATIONS = ("synth", "datasketch", "datasketch-16x4", "rensa")
KINDS = ("copy", "reformat", "char edits", "word edits")
Scan = tuple[list[tuple[int, int]], Any]
"""(flagged position, position of its match) pairs, and the index (kept alive while its memory is measured)."""


def descriptions() -> list[str]:
    """Distinct long descriptions (short line plus body) of Debian's packages, in archive order."""
    files = sorted(glob.glob(TRANSLATIONS))
    if not files:
        sys.exit(f"no {TRANSLATIONS}: run `apt-get update -o Acquire::Languages=en` first")
    seen: dict[str, None] = {}
    for path in files:
        text = subprocess.run(["/usr/lib/apt/apt-helper", "cat-file", path], check=True, capture_output=True,
                              text=True).stdout
        for paragraph in text.split("\n\n"):
            lines = paragraph.split("\n")
            start = next((i for i, line in enumerate(lines) if line.startswith("Description-en: ")), None)
            if start is None:
                continue
            body = [lines[start].removeprefix("Description-en: ")]
            body += ["" if line == " ." else line.strip() for line in lines[start + 1:] if line.startswith(" ")]
            seen.setdefault("\n".join(body).strip())
    return list(seen)


def variant(text: str, kind: str, rng: random.Random) -> str:
    """A near-copy of `text`: identical, re-cased and re-punctuated, about 1% of characters edited, or 2 words."""
    if kind == "copy":
        return text
    if kind == "reformat":
        return " ".join(word.upper() if rng.random() < 0.3 else word for word in text.split()) + " !!"
    if kind == "char edits":
        chars = list(text)
        for _ in range(max(1, len(chars) // 100)):
            at = rng.randrange(len(chars))
            chars[at:at + 1] = rng.choice([[rng.choice("etaoinshr")], [], [chars[at], rng.choice("etaoinshr")]])
        return "".join(chars)
    words = text.split()
    for _ in range(2):
        at = rng.randrange(len(words))
        words[at:at + 1] = rng.choice([[], [words[at], rng.choice(words)]])
    return " ".join(words)


def make_dataset(docs: int, planted: int, seed: int) -> dict[str, Any]:
    """`docs` descriptions, `planted` of them (at least 200 characters) followed later by a near-copy."""
    rng = random.Random(seed)
    pool = descriptions()
    texts = rng.sample(pool, min(docs, len(pool)))
    sources = rng.sample([i for i, t in enumerate(texts) if len(t) >= 200], planted)
    order = [(float(i), "doc", i, t) for i, t in enumerate(texts)]
    for n, source in enumerate(sources):  # each copy somewhere after its source
        kind = KINDS[n % len(KINDS)]
        order.append((rng.uniform(source + 0.5, len(texts)), kind, source, variant(texts[source], kind, rng)))
    order = [item[1:] for item in sorted(order)]
    position = {i: p for p, (kind, i, _) in enumerate(order) if kind == "doc"}
    plants = [(p, position[i], kind) for p, (kind, i, _) in enumerate(order) if kind != "doc"]
    return {"texts": [t for _, _, t in order], "plants": plants, "pool": len(pool)}


class Implementation:
    """One library's signature and first-occurrence-wins scan, behind the same two calls."""

    def __init__(self, name: str, threshold: float):
        self.name = name
        self.threshold = threshold
        method = "datasketch" if name.startswith("datasketch") else name.replace("-", "_")
        self.signature, self.scan = getattr(self, method)()

    def synth(self) -> tuple[Callable[[str], Any], Callable[[list[str]], Scan]]:
        """The filter's own index (`synth.filtering.minhash`), one field per text."""
        from synth.filtering.minhash import NearDuplicateIndex, signature

        def scan(texts: list[str]) -> Scan:
            index = NearDuplicateIndex(self.threshold)
            found = [(i, index.check_and_add([t], str(i))) for i, t in enumerate(texts)]
            return [(i, int(match[0])) for i, match in found if match], index

        return lambda text: signature([text]), scan

    def datasketch(self) -> tuple[Callable[[str], Any], Callable[[list[str]], Scan]]:
        from datasketch import MinHash, MinHashLSH

        template = MinHash(num_perm=NUM_PERM, seed=1)  # permutations made once, as MinHash.bulk does

        def signature(text: str) -> MinHash:
            minhash = MinHash(num_perm=NUM_PERM, seed=1, permutations=template.permutations, scheme=template.scheme)
            minhash.update_batch([s.encode("utf-8") for s in shingles(text)])
            return minhash

        params = (BANDS, NUM_PERM // BANDS) if self.name.endswith("16x4") else None
        return signature, lambda texts: self.first_wins(
            texts, signature, MinHashLSH(threshold=self.threshold, num_perm=NUM_PERM, params=params))

    def rensa(self) -> tuple[Callable[[str], Any], Callable[[list[str]], Scan]]:
        from rensa import RMinHash, RMinHashLSH

        def signature(text: str) -> RMinHash:
            minhash = RMinHash(num_perm=NUM_PERM, seed=1)
            minhash.update(shingles(text))
            return minhash

        return signature, lambda texts: self.first_wins(texts, signature, RMinHashLSH(self.threshold, NUM_PERM, BANDS))

    def first_wins(self, texts: list[str], signature: Callable[[str], Any], lsh: Any) -> Scan:
        """The filter's scan with a library's LSH: the earliest candidate at or over the threshold, else add."""
        kept: dict[int, Any] = {}
        flags = []
        for i, text in enumerate(texts):
            minhash = signature(text)
            match = next((k for k in sorted(lsh.query(minhash)) if minhash.jaccard(kept[k]) >= self.threshold), None)
            if match is None:
                kept[i] = minhash
                lsh.insert(i, minhash)
            else:
                flags.append((i, match))
        return flags, (kept, lsh)


def rss_mib() -> float:
    """Resident memory now (not the peak: loading the texts' JSON peaks higher than most indexes)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 2**20


def worker(name: str, data: Path, threshold: float) -> None:
    """Run one implementation on the dataset file and print its measurements as one JSON line."""
    texts = json.loads(data.read_text(encoding="utf-8"))["texts"]
    implementation = Implementation(name, threshold)
    implementation.signature(texts[0])  # imports and one-off set-up off the clock
    before = rss_mib()
    started = time.perf_counter()
    flags, index = implementation.scan(texts)
    scan_s = time.perf_counter() - started
    grown = rss_mib() - before
    del index
    started = time.perf_counter()
    for text in texts:
        implementation.signature(text)
    per_second = len(texts) / (time.perf_counter() - started)
    print(json.dumps({"scan_s": scan_s, "signatures_per_s": per_second, "rss_mib": grown, "flags": flags}))


def jaccard(a: str, b: str) -> float:
    x, y = set(shingles(a)), set(shingles(b))
    return len(x & y) / len(x | y)


def quality(result: dict[str, Any], dataset: dict[str, Any], threshold: float) -> dict[str, float]:
    """Recall over planted near-copies that truly reach the threshold, and precision over every flag."""
    texts = dataset["texts"]
    flagged = {i: match for i, match in result["flags"]}
    positives = [p for p, source, _ in dataset["plants"] if jaccard(texts[p], texts[source]) >= threshold]
    correct = sum(jaccard(texts[i], texts[match]) >= threshold for i, match in flagged.items())
    return {"recall": sum(p in flagged for p in positives) / len(positives),
            "precision": correct / len(flagged) if flagged else 1.0, "flagged": len(flagged),
            "positives": len(positives)}


def run(name: str, data: Path, threshold: float) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, "--worker", name, "--data", str(data),
                           "--threshold", str(threshold)], capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{name} failed:\n{done.stderr}")
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--planted", type=int, default=2_000)
    parser.add_argument("--threshold", type=float, default=0.8, help="the filter's near_dup_threshold default")
    parser.add_argument("--rounds", type=int, default=2, help="alternated rounds; the fastest of each is shown")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--worker", choices=IMPLEMENTATIONS, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.data, args.threshold)
        return
    dataset = make_dataset(args.docs, args.planted, args.seed)
    data = HERE / "data" / f"dedup_{args.docs}_{args.planted}_{args.seed}.json"
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_text(json.dumps(dataset), encoding="utf-8")
    best: dict[str, dict[str, Any]] = {}
    for _ in range(args.rounds):
        for name in IMPLEMENTATIONS:
            result = run(name, data, args.threshold)
            if name not in best or result["scan_s"] < best[name]["scan_s"]:
                best[name] = result
            best[name]["signatures_per_s"] = max(best[name]["signatures_per_s"], result["signatures_per_s"])
    base = best["synth"]
    scores = {name: quality(result, dataset, args.threshold) for name, result in best.items()}
    table = Table(title=f"{len(dataset['texts']):,} texts ({dataset['pool']:,} Debian descriptions drawn from), "
                        f"{args.planted:,} planted near-copies ({scores['synth']['positives']:,} at Jaccard >= "
                        f"{args.threshold}), {NUM_PERM} permutations, best of {args.rounds} rounds")
    for column in ("implementation", "signatures/s", "vs synth", "scan s", "vs synth", "recall", "precision",
                   "flagged", "index RSS MiB"):
        table.add_column(column, justify="left" if column == "implementation" else "right")
    for name, result in best.items():
        score = scores[name]
        table.add_row(name, f"{result['signatures_per_s']:,.0f}",
                      f"{result['signatures_per_s'] / base['signatures_per_s']:.2f}x", f"{result['scan_s']:.2f}",
                      f"{result['scan_s'] / base['scan_s']:.2f}x", f"{score['recall']:.4f}",
                      f"{score['precision']:.4f}", f"{score['flagged']:,}", f"{result['rss_mib']:.0f}")
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
