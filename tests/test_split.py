"""`synth split`: leak-free groups, a seeded and resumable split, BEIR files that sentence-transformers evaluates."""

from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path

import pytest
from helpers import SAMPLES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from synth.cli import app
from synth.errors import UsageError
from synth.filtering.minhash import signature
from synth.pipeline.status import run_status
from synth.split.beir import CORPUS, QRELS, QUERIES
from synth.split.stage import run_split
from synth.store import iter_rows, list_parts, read_manifest
from tests.pipeline_fixtures import cls, passage, retrieval, sts, write_stage

runner = CliRunner()
CAPITALS = [("France", "Paris"), ("Spain", "Madrid"), ("Italy", "Rome"), ("Japan", "Tokyo"), ("Kenya", "Nairobi"),
            ("Peru", "Lima"), ("Egypt", "Cairo"), ("Norway", "Oslo"), ("Chile", "Santiago"), ("Canada", "Ottawa"),
            ("Greece", "Athens"), ("Poland", "Warsaw"), ("Cuba", "Havana"), ("Ireland", "Dublin"),
            ("Portugal", "Lisbon"), ("Austria", "Vienna"), ("Hungary", "Budapest"), ("Thailand", "Bangkok"),
            ("Vietnam", "Hanoi"), ("Ghana", "Accra"), ("Nepal", "Kathmandu"), ("Finland", "Helsinki"),
            ("Denmark", "Copenhagen"), ("Sweden", "Stockholm")]


def family_text(pool: str, family: int, variant: int) -> str:
    """A long text of its own random words per family; variants differ by case, punctuation or one short word,
    so variants of a family are near duplicates and texts of two families are not."""
    rng = random.Random(f"{pool}-{family}")
    base = " ".join("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(6)) for _ in range(24))
    return [base, base.upper(), f"{base}!", f"{base} ok"][variant % 4]


record_spec = st.tuples(st.sampled_from(["retrieval", "passage", "sts", "cls"]),
                        st.one_of(st.none(), st.integers(0, 5)), st.integers(0, 7), st.integers(0, 7),
                        st.integers(0, 3), st.integers(0, 3))


def make_records(specs: list[tuple]) -> tuple[list[dict], dict[str, tuple[str, int]]]:
    """Records from (task, document, query family, passage family, variants), and each text's (pool, family)."""
    rows, families = [], {}
    for task, document, qf, pf, qv, pv in specs:
        query, text = family_text("q", qf, qv), family_text("p", pf, pv)
        families[query], families[text] = ("q", qf), ("p", pf)
        document_id = None if document is None else f"doc-{document}"
        if task == "retrieval":
            rows.append(retrieval(query, text, document_id=document_id))
        elif task == "passage":
            rows.append(passage(text, document_id or f"own-{pf}-{pv}", chunk_index=qv))
        elif task == "sts":
            rows.append(sts(query, text, 0.5, document_id=document_id))
        else:
            rows.append(cls(query, "label", document_id=document_id))
    rows += [cls(f"isolated record number {i} about nothing in particular", "x") for i in range(2)]
    return rows, families


def sides(out: Path) -> dict[str, list[dict]]:
    return {side: list(iter_rows(out / side)) if (out / side).is_dir() else [] for side in ("train", "eval")}


def leak_keys(row: dict, families: dict[str, tuple[str, int]]) -> set:
    """What must not be on both sides: the document and the near-duplicate family of each grouped text."""
    keys = {("doc", row["document_id"])} if row.get("document_id") else set()
    if row["task"] == "sts":
        return keys | {("sts", families[row["text_a"]], families[row["text_b"]])}
    fields = {"retrieval": ("query", "positive"), "passage": ("text",), "cls": ("text",)}[row["task"]]
    return keys | {("text", families.get(row[field], row[field])) for field in fields}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=st.lists(record_spec, min_size=1, max_size=24), fraction=st.floats(0.2, 0.8), seed=st.integers(0, 99))
def test_no_document_or_near_duplicate_group_is_on_both_sides(specs, fraction, seed):
    rows, families = make_records(specs)
    with tempfile.TemporaryDirectory() as tmp:
        by_task: dict[str, list[dict]] = {}
        for row in rows:
            by_task.setdefault(row["task"], []).append(row)
        source = write_stage(Path(tmp) / "in", list(by_task.values()))
        run_split(source, Path(tmp) / "out", fraction, seed, 0.8)
        split = sides(Path(tmp) / "out")
    assert sorted(r["id"] for s in split.values() for r in s) == sorted(r["id"] for r in rows)
    assert split["train"] and split["eval"]
    train = set().union(*(leak_keys(r, families) for r in split["train"]))
    evaluation = set().union(*(leak_keys(r, families) for r in split["eval"]))
    assert not train & evaluation


def capital_records() -> list[dict]:
    return [retrieval(f"What is the capital city of {country}?", f"{city} is the capital of {country}.",
                      negatives=[f"{country} has many rivers and mountains."], document_id=f"atlas-{country}")
            for country, city in CAPITALS]


def file_bytes(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*"))
            if p.is_file() and not p.name.startswith("_")}


def test_the_split_is_deterministic_by_seed_resumes_and_reaches_the_fraction(tmp_path):
    singles = [cls(family_text("s", i, 0), "x") for i in range(200)]
    source = write_stage(tmp_path / "in", [singles[:120], singles[120:], capital_records()])
    first = run_split(source, tmp_path / "a", 0.2, 7, 0.8)
    again = run_split(source, tmp_path / "b", 0.2, 7, 0.8)
    assert file_bytes(tmp_path / "a") == file_bytes(tmp_path / "b")
    assert abs(first.stats["eval share"] - 0.2) < 0.01 and again.stats == first.stats
    other = run_split(source, tmp_path / "c", 0.2, 8, 0.8)
    assert {r["id"] for r in sides(tmp_path / "c")["eval"]} != {r["id"] for r in sides(tmp_path / "a")["eval"]}
    assert other.stats["eval share"] == pytest.approx(0.2, abs=0.01)
    (tmp_path / "a" / "eval" / CORPUS).unlink()
    rerun = run_split(source, tmp_path / "a", 0.2, 7, 0.8)
    assert rerun.skipped == 3 and rerun.processed == 0
    assert file_bytes(tmp_path / "a") == file_bytes(tmp_path / "b")
    groups = read_manifest(tmp_path / "a")["split_groups"]["groups"]
    assert groups == first.stats["groups groups"] and 200 < groups <= 224  # short capital queries may be near


def load_beir(directory: Path) -> tuple[dict, dict, dict]:
    corpus = {r["_id"]: r for r in map(json.loads, (directory / CORPUS).read_text().splitlines())}
    queries = {r["_id"]: r["text"] for r in map(json.loads, (directory / QUERIES).read_text().splitlines())}
    header, *lines = (directory / QRELS).read_text().splitlines()
    assert header == "query-id\tcorpus-id\tscore"
    relevant: dict[str, set[str]] = {}
    for line in lines:
        query, doc, score = line.split("\t")
        assert int(score) == 1 and doc in corpus and query in queries
        relevant.setdefault(query, set()).add(doc)
    return corpus, queries, relevant


def test_beir_files_evaluate_with_sentence_transformers(tmp_path):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    from tests.embed_fixtures import minilm_path

    passages = [passage(f"Travel notes on {country}: trains are cheap and the food is good.", f"atlas-{country}",
                        title=f"{country} guide") for country, _ in CAPITALS]
    source = write_stage(tmp_path / "in", [capital_records(), passages])
    run_split(source, tmp_path / "out", 0.5, 3, 0.8)
    evaluation = tmp_path / "out" / "eval"
    corpus, queries, relevant = load_beir(evaluation)
    eval_rows = list(iter_rows(evaluation))
    countries = {r["document_id"] for r in eval_rows}
    assert countries.isdisjoint(r["document_id"] for r in iter_rows(tmp_path / "out" / "train"))
    assert len(queries) == sum(r["task"] == "retrieval" for r in eval_rows) == len(relevant)
    assert len(corpus) == 3 * len(queries)  # positive, negative and passage of every eval country, no duplicates
    assert sum(bool(c["title"]) for c in corpus.values()) == len(queries)
    evaluator = InformationRetrievalEvaluator(queries, {k: c["text"] for k, c in corpus.items()}, relevant,
                                              name="split", show_progress_bar=False)
    scores = evaluator(SentenceTransformer(minilm_path(), device="cpu"))
    assert scores["split_cosine_ndcg@10"] > 0.8, scores


def test_cli_and_bad_input(tmp_path):
    """Bad input raises a UsageError (the CLI's exit 2, see synth.cli.main) and writes no part."""
    source = write_stage(tmp_path / "in", [capital_records()])
    result = runner.invoke(app, ["split", str(source), "--eval-fraction", "0.25", "--seed", "1",
                                 "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "eval share" in result.output
    assert [p.key for p in list_parts(tmp_path / "out" / "train")] == ["retrieval/part-00000"]
    for args, message in [(["--eval-fraction", "1.5"], "eval_fraction must be between 0 and 1"),
                          (["--eval-fraction", "0"], "eval_fraction must be between 0 and 1"),
                          (["--eval-fraction", "0.001"], "leaves the eval side empty")]:
        bad = runner.invoke(app, ["split", str(source), *args, "--out", str(tmp_path / "bad")])
        assert isinstance(bad.exception, UsageError) and message in str(bad.exception), bad.output
    one_book = write_stage(tmp_path / "book", [[retrieval(f"question {i}?", f"answer {i}.", document_id="book")
                                                for i in range(3)]])
    single = runner.invoke(app, ["split", str(one_book), "--out", str(tmp_path / "bad")])
    assert isinstance(single.exception, UsageError) and "nothing to split" in str(single.exception)
    (tmp_path / "empty").mkdir()
    empty = runner.invoke(app, ["split", str(tmp_path / "empty"), "--out", str(tmp_path / "bad")])
    assert isinstance(empty.exception, UsageError) and "no Parquet parts" in str(empty.exception)
    assert not list((tmp_path / "bad").glob("*/*/*.parquet"))


def test_split_is_a_pipeline_stage_whose_sides_feed_export(tmp_path):
    samples = SAMPLES
    pipeline = tmp_path / "split.toml"
    pipeline.write_text(f"""name = "split-demo"
[[stage]]
use = "ingest"
inputs = ["{samples / 'qa.jsonl'}"]
shape = "qa"
[[stage]]
use = "split"
eval_fraction = 0.3
seed = 5
[[stage]]
use = "export"
inputs = ["split/train"]
format = ["jsonl"]
""")
    result = runner.invoke(app, ["run", str(pipeline), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    exported = list((tmp_path / "run" / "export" / "jsonl" / "retrieval").glob("train-*.jsonl"))
    lines = sum(len(p.read_text().splitlines()) for p in exported)
    assert lines == len(list(iter_rows(tmp_path / "run" / "split" / "train"))) > 0
    assert (tmp_path / "run" / "split" / "eval" / QRELS).is_file()
    _, statuses = run_status(tmp_path / "run")
    assert [(s.name, s.rerun) for s in statuses] == [(n, "skip all 1 parts") for n in ("ingest", "split", "export")]


def test_a_chain_of_near_duplicates_is_one_group(tmp_path):
    """A ~ X ~ B while A and B are not near duplicates of each other: all three must land on one side."""
    rng = random.Random(3)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(6)) for _ in range(40)]
    a = " ".join(words[:30])
    x = " ".join(words[:24] + words[30:36])  # shares 24 of 30 words with a and with b
    b = " ".join(words[:18] + words[30:36] + words[36:40] + words[18:20])
    assert signature([a]).jaccard(signature([x])) >= 0.5 > signature([a]).jaccard(signature([b]))
    queries = ["where do herons nest", "how is steel tempered", "why do tides rise"]
    rows = [retrieval(q, text) for q, text in zip(queries, (a, x, b), strict=True)]
    rows += [retrieval(" ".join(rng.choice(words) for _ in range(5)) + f" {i}", f"{i} " + " ".join(
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(7)) for _ in range(12))) for i in range(12)]
    source = write_stage(tmp_path / "final", [rows])
    for seed in range(12):
        out = tmp_path / f"split-{seed}"
        run_split(source, out, 0.3, seed, 0.5)
        split = sides(out)
        placed = {r["positive"]: side for side, side_rows in split.items() for r in side_rows}
        assert placed[a] == placed[x] == placed[b], seed
