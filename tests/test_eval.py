"""`synth eval`: the retrieval metrics against hand computations and sentence-transformers, the fine-tuning run's
files and card section, and bad eval sets refused with nothing written."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from embed_fixtures import minilm_path
from ingest_fixtures import cli

from synth.card import set_section
from synth.embed.local import pick_device
from synth.errors import UsageError
from synth.evaluation.evalset import load_eval_set
from synth.evaluation.metrics import rank_metrics, retrieval_metrics, sts_spearman
from synth.evaluation.report import bar
from synth.evaluation.run import load_inputs
from synth.evaluation.spec import EVAL, sources
from synth.evaluation.traindata import load_train_data
from synth.executor import Decision, dry_run
from synth.pipeline.plan import load_plan
from synth.schema import Task, validate_row
from synth.store import read_manifest, write_part

THINGS = ["kettle", "bicycle", "violin", "tomato", "passport", "laptop", "garden", "aquarium", "sourdough", "tent",
          "printer", "kayak", "piano", "orchid", "chimney", "scooter", "camera", "beehive", "tractor", "telescope"]
"""Twenty topics: one eval query each, two train pairs each."""


def test_perfect_ranking_scores_one() -> None:
    assert rank_metrics([[0, 1, 2], [3, 0]], [{0}, {3}]) == {"ndcg@10": 1.0, "recall@10": 1.0, "recall@100": 1.0,
                                                             "mrr@10": 1.0}


def test_metrics_match_hand_computed_values() -> None:
    # query 1: relevant 0 and 1 found at ranks 2 and 4; query 2: its relevant document at rank 12
    scores = rank_metrics([[2, 0, 3, 1], [*range(10, 21), 5]], [{0, 1}, {5}])
    ndcg = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert scores["ndcg@10"] == pytest.approx(ndcg / 2)
    assert scores["recall@10"] == pytest.approx(0.5)
    assert scores["recall@100"] == pytest.approx(1.0)
    assert scores["mrr@10"] == pytest.approx(0.25)


def test_exact_search_ranks_by_cosine_whatever_the_norm() -> None:
    corpus = np.array([[1.0, 0.0], [0.0, 5.0], [3.0, 3.1]])
    queries = np.array([[0.0, 2.0], [10.0, 0.1]])
    scores = retrieval_metrics(queries, corpus, [{2}, {0}])
    assert scores["mrr@10"] == pytest.approx((1 / 2 + 1) / 2)


def write_eval_set(directory: Path, qrels: list[str] | None = None) -> Path:
    """20 queries, 60 documents; per query its topic's guide and one unrelated note are relevant, so no model ranks
    perfectly."""
    (directory / "qrels").mkdir(parents=True)
    docs = [{"_id": f"d{i}-{k}", "title": thing if k == 0 else "",
             "text": f"A guide to the {thing}: how to look after a {thing} well." if k == 0 else
             f"Notes number {k} on {THINGS[(i + k) % 20]} prices and shops."}
            for i, thing in enumerate(THINGS) for k in range(3)]
    queries = [{"_id": f"q{i}", "text": f"how should I maintain my {thing}"} for i, thing in enumerate(THINGS)]
    (directory / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (directory / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    lines = qrels if qrels is not None else [f"q{i}\td{i}-0\t1\nq{i}\td{(i + 7) % 20}-2\t1" for i in range(20)]
    (directory / "qrels/test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(lines) + "\n")
    return directory


def write_final(directory: Path) -> Path:
    """A final directory of 40 retrieval records, one hard negative each, and a card."""
    rows = [validate_row(Task.RETRIEVAL, {
        "task": "retrieval", "instruction": "", "lang": "en", "source": "test",
        "query": f"{verb} {thing}", "positive": f"Everything about looking after a {thing}.",
        "negatives": [f"Everything about buying a {THINGS[(i + 1) % 20]}."]})
        for i, thing in enumerate(THINGS) for verb in ("caring for a", "cleaning a")]
    write_part(directory, Task.RETRIEVAL, "part-00000", rows)
    (directory / "README.md").write_text("# Dataset card\n\n## Records per task type\n\n40 rows\n")
    return directory


def test_metrics_equal_sentence_transformers_evaluator(tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    eval_set = load_eval_set(write_eval_set(tmp_path / "beir"))
    model = SentenceTransformer(minilm_path(), device="cpu")
    queries = model.encode(eval_set.query_texts, normalize_embeddings=True)
    corpus = model.encode(eval_set.corpus_texts, normalize_embeddings=True)
    ours = retrieval_metrics(queries, corpus, eval_set.relevant)
    evaluator = InformationRetrievalEvaluator(
        dict(zip(eval_set.query_ids, eval_set.query_texts, strict=True)),
        dict(zip(eval_set.corpus_ids, eval_set.corpus_texts, strict=True)),
        {q: {eval_set.corpus_ids[row] for row in rows} for q, rows in zip(eval_set.query_ids, eval_set.relevant,
                                                                          strict=True)},
        mrr_at_k=[10], ndcg_at_k=[10], accuracy_at_k=[1], precision_recall_at_k=[10, 100], map_at_k=[10],
        show_progress_bar=False, name="t")
    theirs = evaluator(model)
    assert ours["ndcg@10"] < 1.0  # the distractors make it a real ranking
    for name in ours:
        assert ours[name] == pytest.approx(theirs[f"t_cosine_{name}"], abs=1e-6)


def test_training_device_follows_the_gpu_count(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick_device() == "cuda"
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert pick_device() == "cpu"


def test_eval_writes_results_and_card_section(tmp_path: Path) -> None:
    final, beir, out = write_final(tmp_path / "final"), write_eval_set(tmp_path / "beir"), tmp_path / "eval"
    args = ["eval", final, "--eval-set", beir, "--out", out, "--steps", 3, "--batch-size", 8,
            "--model", minilm_path()]
    assert cli(*args).exit_code == 0
    result = json.loads((out / "eval.json").read_text())
    assert result["settings"]["steps"] == 3 and result["train"]["retrieval_rows"] == 40
    assert result["eval_set"] == {"path": str(beir), "queries": 20, "corpus": 60}
    assert result["loss"]["first"] > 0 and set(result["fine_tuned"]) == set(result["base"])
    for name, value in result["delta"].items():
        assert value == pytest.approx(result["fine_tuned"][name] - result["base"][name], abs=1e-6)
    card = (final / "README.md").read_text()
    assert card.startswith("# Dataset card\n\n## Records per task type\n\n40 rows\n\n## Evaluation\n")
    assert card.count("## Evaluation") == 1
    ndcg = f"| ndcg@10 | {result['base']['ndcg@10']:.4f} | {result['fine_tuned']['ndcg@10']:.4f} |"
    assert ndcg in card and ndcg in (out / "README.md").read_text()

    plans = EVAL.plans({**EVAL.defaults(), "inputs": [str(final)], "eval_set": str(beir)})
    assert dry_run(plans, out, read_manifest(out)) == {Decision.SKIP: 1}  # what `synth status` says

    (out / "README.md").unlink()  # a rerun with the same inputs does not train again, and restores the section
    before = (out / "eval.json").read_bytes()
    assert cli(*args).exit_code == 0
    assert (out / "eval.json").read_bytes() == before and ndcg in (out / "README.md").read_text()
    assert (final / "README.md").read_text() == card


@pytest.mark.parametrize("break_set, message", [
    (lambda d: (d / "qrels/test.tsv").unlink(), "no qrels/test.tsv"),
    (lambda d: write_eval_set(d.parent / "other", ["q1\td1-0\t1", "q2\tnowhere\t1"]), "document 'nowhere'"),
    (lambda d: write_eval_set(d.parent / "other", ["q99\td1-0\t1"]), "query 'q99'"),
])
def test_bad_eval_set_is_one_line_and_writes_nothing(tmp_path: Path, break_set, message: str) -> None:
    final, beir = write_final(tmp_path / "final"), write_eval_set(tmp_path / "beir")
    broken = break_set(beir) or beir
    card = (final / "README.md").read_text()
    with pytest.raises(UsageError) as error:
        cli("eval", final, "--eval-set", broken, "--out", tmp_path / "eval", "--model", minilm_path())
    assert message in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "eval").exists() and (final / "README.md").read_text() == card


def test_an_export_folder_trains_on_the_same_rows_as_its_final_directory(tmp_path: Path) -> None:
    final = write_final(tmp_path / "final")
    assert cli("export", final, "--out", tmp_path / "export").exit_code == 0
    assert load_train_data(tmp_path / "export", 1).retrieval == load_train_data(final, 1).retrieval
    assert len(load_train_data(tmp_path / "export", 0).retrieval[0]) == 2
    with pytest.raises(UsageError, match="1 negative columns, fewer than --negatives 2"):
        load_train_data(tmp_path / "export", 2)


def test_a_split_directory_gives_both_sides(tmp_path: Path) -> None:
    final, split = write_final(tmp_path / "final"), tmp_path / "split"
    assert cli("split", final, "--out", split, "--eval-fraction", 0.5).exit_code == 0
    train, eval_path = sources({"inputs": [str(split)], "eval_set": None})
    data, eval_set, _ = load_inputs(train, eval_path, 1)
    assert eval_set.directory == split / "eval" and len(data.retrieval) + len(eval_set.query_texts) == 40


def test_eval_is_a_pipeline_stage_after_export(tmp_path: Path) -> None:
    pipeline = tmp_path / "pipeline.toml"
    pipeline.write_text('name = "p"\n[[stage]]\nuse = "export"\ninputs = ["final"]\nout = "export"\n'
                        '[[stage]]\nuse = "eval"\ninputs = ["export", "beir"]\nsteps = 5\n')
    stage = load_plan(pipeline, tmp_path / "run").stages[1]
    assert stage.options["inputs"] == [str(tmp_path / "run/export"), str(tmp_path / "beir")]
    assert stage.out == tmp_path / "run/eval" and stage.options["steps"] == 5


def test_set_section_replaces_only_its_own_section(tmp_path: Path) -> None:
    card = tmp_path / "README.md"
    card.write_text("# Card\n\n## A\n\none\n\n## Evaluation\n\nold\n\n## B\n\ntwo\n")
    set_section(card, "Evaluation", ["new"])
    assert card.read_text() == "# Card\n\n## A\n\none\n\n## Evaluation\n\nnew\n\n## B\n\ntwo\n"


def test_bars_grow_in_eighths() -> None:
    assert bar(1.0) == "█" * 20 and bar(0.5) == "█" * 10 and bar(0.0) == "▏"
    assert bar(0.05 + 1 / 160) == "█▏"


STS_PAIRS = [("A man is playing a guitar.", "A man plays the guitar.", 0.95),
             ("A woman is slicing an onion.", "Someone is cutting an onion.", 0.85),
             ("A dog runs in the park.", "A puppy is running on the grass.", 0.7),
             ("The stock market fell today.", "Shares dropped sharply this afternoon.", 0.6),
             ("A child is reading a book.", "A kid plays football outside.", 0.2),
             ("The train arrived late.", "She baked a chocolate cake.", 0.0)]


def write_sts_set(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sts.jsonl").write_text("".join(
        json.dumps({"sentence1": a, "sentence2": b, "score": s}) + "\n" for a, b, s in STS_PAIRS))
    return directory


def test_sts_spearman_equals_sentence_transformers_evaluator(tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.evaluation import EmbeddingSimilarityEvaluator

    eval_set = load_eval_set(write_sts_set(tmp_path / "sts"))
    model = SentenceTransformer(minilm_path(), device="cpu")
    first, second, gold = (list(c) for c in zip(*eval_set.sts, strict=True))
    ours = sts_spearman(model.encode(first), model.encode(second), gold)
    theirs = EmbeddingSimilarityEvaluator(first, second, gold, name="t", show_progress_bar=False)(model)
    assert 0 < ours < 1 and ours == pytest.approx(theirs["t_spearman_cosine"], abs=1e-6)
    second = np.array([[1.0, 0, 0], [1, 1, 0], [3, 0, 1]])  # cosines to the unit vectors: 1, 0.71, 0.32
    assert sts_spearman(np.eye(3), second, [0.9, 0.5, 0.1]) == pytest.approx(1.0)
    assert sts_spearman(np.eye(3), second, [0.1, 0.5, 0.9]) == pytest.approx(-1.0)


def test_eval_on_an_sts_eval_set_reports_spearman_in_json_and_card(tmp_path: Path) -> None:
    final, sts_set, out = write_final(tmp_path / "final"), write_sts_set(tmp_path / "sts"), tmp_path / "eval"
    assert cli("eval", final, "--eval-set", sts_set, "--out", out, "--steps", 2, "--batch-size", 4,
               "--model", minilm_path()).exit_code == 0
    result = json.loads((out / "eval.json").read_text())
    assert set(result["base"]) == {"spearman"} and result["eval_set"]["sts_pairs"] == len(STS_PAIRS)
    row = f"| spearman | {result['base']['spearman']:.4f} | {result['fine_tuned']['spearman']:.4f} |"
    assert row in (out / "README.md").read_text() and "6 STS pairs" in (out / "README.md").read_text()
    (sts_set / "sts.jsonl").write_text('{"sentence1": "a", "sentence2": "b", "score": "high"}\n' * 2)
    with pytest.raises(UsageError, match="score 'high' is not a number"):
        load_eval_set(sts_set)
