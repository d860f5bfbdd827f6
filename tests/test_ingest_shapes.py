"""Every input shape end to end through `synth ingest` into Parquet and back, on the samples in data_samples/."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers import SAMPLES
from ingest_fixtures import cli, read_task, rejects, rows

from synth.ingest.lang import DEFAULT_JOINERS
from synth.schema import ARROW_SCHEMAS, DEFAULT_INSTRUCTIONS, Task, validate_row
from synth.store import list_parts

# (sample file, shape, extra flags, task, records expected)
SAMPLE_RUNS = [
    ("title_body.jsonl", "title-body", [], "retrieval", 6),
    ("title_abstract.csv", "title-abstract", [], "retrieval", 5),
    ("qa.jsonl", "qa", [], "retrieval", 7),
    ("chat_qa.jsonl", "chat-qa", [], "retrieval", 6),
    ("reading.jsonl", "reading", [], "retrieval", 6),
    ("claim_evidence.tsv", "claim-evidence", [], "retrieval", 6),
    ("sts_binary.csv", "sts-binary", [], "sts", 24),
    ("sts_score.tsv", "sts-score", ["--score-range", "0,5"], "sts", 24),
    ("nli.parquet", "nli", [], "sts", 26),
    ("cls.jsonl", "cls", [], "cls", 16),
]


def ingest(tmp_path: Path, sample: str, shape: str, *flags: str) -> Path:
    out = tmp_path / shape
    result = cli("ingest", SAMPLES / sample, "--shape", shape, "--out", out, *flags)
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize(("sample", "shape", "flags", "task", "expected"), SAMPLE_RUNS)
def test_every_sample_becomes_valid_unified_records(tmp_path, sample, shape, flags, task, expected):
    out = ingest(tmp_path, sample, shape, *flags)
    table = read_task(out, task)
    assert table.schema == ARROW_SCHEMAS[Task(task)]
    assert table.num_rows == expected
    assert rejects(out) == []
    for row in table.to_pylist():
        assert validate_row(task, row) == row  # the fast path agrees with the pydantic model, id included
        assert row["source"] == sample.split(".")[0]
        assert row["instruction"] == DEFAULT_INSTRUCTIONS[Task(task)]
        assert json.loads(row["meta"])["input"].startswith(f"{sample}:")
    assert {row["lang"] for row in table.to_pylist()} == {"en", "zh"}


def test_title_abstract_csv_with_bom_and_crlf(tmp_path):
    assert (SAMPLES / "title_abstract.csv").read_bytes().startswith(b"\xef\xbb\xbftitle,abstract,year\r\n")
    records = rows(ingest(tmp_path, "title_abstract.csv", "title-abstract"), "retrieval")
    assert records[0]["query"] == "Contrastive Pre-training for Sentence Embeddings with Hard Negatives"
    assert records[0]["positive"].startswith("We study how the choice of negatives affects")
    assert not any(r["query"].endswith("\r") or r["positive"].endswith("\r") for r in records)
    assert json.loads(records[0]["meta"]) == {"input": "title_abstract.csv:line 2", "extra": {"year": "2023"}}
    assert [r["lang"] for r in records] == ["en", "en", "en", "zh", "zh"]


def test_qa_uses_the_rows_lang_column(tmp_path):
    records = rows(ingest(tmp_path, "qa.jsonl", "qa"), "retrieval")
    assert [r["lang"] for r in records] == ["en"] * 4 + ["zh"] * 3
    assert records[5]["query"] == "Python 里的 list 和 tuple 有什么区别？"


def test_chat_qa_takes_the_first_user_turn_and_the_answer_after_it(tmp_path):
    records = rows(ingest(tmp_path, "chat_qa.jsonl", "chat-qa"), "retrieval")
    assert records[0]["query"] == "What should I pack for a week of hiking in Scotland in May?"  # system turn skipped
    assert records[1]["positive"].startswith("Find the small reset hole")
    assert records[2]["query"] == "Is it safe to leave a phone charging overnight?"  # ShareGPT from/value
    everything = rows(ingest(tmp_path / "all", "chat_qa.jsonl", "chat-qa", "--chat-turns", "all"), "retrieval")
    assert len(everything) == 8
    follow_up = next(r for r in everything if r["query"] == "Will that delete my Wi-Fi password?")
    assert json.loads(follow_up["meta"])["turn"] == 1


def test_reading_joins_context_and_question_per_language(tmp_path):
    records = rows(ingest(tmp_path, "reading.jsonl", "reading"), "retrieval")
    zh = records[3]
    assert zh["query"].endswith("\n请阅读上述文章，回答下列问题：都江堰是由谁主持修建的？")
    assert zh["positive"] == "由秦国蜀郡太守李冰父子主持修建。"
    assert DEFAULT_JOINERS["en"] + "Which years saw the most severe bleaching events?" in records[0]["query"]
    custom = rows(ingest(tmp_path / "j", "reading.jsonl", "reading", "--joiner", "en=\\nQuestion: "), "retrieval")
    assert custom[0]["query"].endswith("2017.\nQuestion: Which years saw the most severe bleaching events?")
    assert custom[3]["query"] == zh["query"]


def test_claim_evidence_tsv(tmp_path):
    records = rows(ingest(tmp_path, "claim_evidence.tsv", "claim-evidence"), "retrieval")
    assert records[2] == {**records[2], "query": "Bats are blind.", "lang": "en"}
    assert records[2]["positive"].startswith("All bat species can see")


def test_sts_binary_labels_and_both_directions(tmp_path):
    records = rows(ingest(tmp_path, "sts_binary.csv", "sts-binary"), "sts")
    by_pair = {(r["text_a"], r["text_b"]): r for r in records}
    forward = by_pair[("Is it safe to eat raw eggs?", "Can eating uncooked eggs make you sick?")]
    backward = by_pair[("Can eating uncooked eggs make you sick?", "Is it safe to eat raw eggs?")]
    assert (forward["score"], forward["label"], backward["score"], backward["label"]) == (1.0, "yes", 1.0, "yes")
    assert json.loads(backward["meta"])["reversed"] is True
    assert {r["label"]: r["score"] for r in records} == {
        "1": 1.0,
        "0": 0.0,
        "yes": 1.0,
        "no": 0.0,
        "true": 1.0,
        "false": 0.0,
    }
    one_way = rows(ingest(tmp_path / "one", "sts_binary.csv", "sts-binary", "--no-both-directions"), "sts")
    assert len(one_way) == 12


def test_sts_score_from_a_config_file_is_scaled_and_keeps_the_raw_label(tmp_path):
    out = tmp_path / "sts"
    result = cli("ingest", SAMPLES / "sts_score.tsv", "--config", SAMPLES / "sts_score.toml", "--out", out)
    assert result.exit_code == 0, result.output
    first = rows(out, "sts")[0]
    assert (first["score"], first["label"]) == (pytest.approx(0.92), "4.6")
    assert {r["score"] for r in rows(out, "sts")} >= {0.0}


def test_nli_parquet_labels(tmp_path):
    records = rows(ingest(tmp_path, "nli.parquet", "nli"), "sts")
    scores = {r["label"]: r["score"] for r in records}
    assert scores == {"entailment": 1.0, "neutral": 0.5, "contradiction": 0.0}
    assert json.loads(records[0]["meta"])["input"] == "nli.parquet:row 0"


def test_cls_positive_is_same_class_and_negatives_are_other_classes(tmp_path):
    records = rows(ingest(tmp_path, "cls.jsonl", "cls", "--num-negatives", "2"), "cls")
    label_of = {r["text"]: r["label"] for r in records}
    for record in records:
        assert record["positive"] != record["text"]
        assert label_of[record["positive"]] == record["label"]
        assert len(record["negatives"]) == 2
        assert all(label_of[n] != record["label"] for n in record["negatives"])
    again = rows(ingest(tmp_path / "again", "cls.jsonl", "cls", "--num-negatives", "2"), "cls")
    assert again == records
    reseeded = rows(ingest(tmp_path / "seed", "cls.jsonl", "cls", "--num-negatives", "2", "--seed", "7"), "cls")
    assert [r["id"] for r in reseeded] == [r["id"] for r in records]
    assert [(r["positive"], r["negatives"]) for r in reseeded] != [(r["positive"], r["negatives"]) for r in records]


def test_options_flags_override_defaults(tmp_path):
    out = ingest(
        tmp_path, "title_body.jsonl", "title-body", "--lang", "mul", "--source", "news", "--instruction", "Find it"
    )
    record = rows(out, "retrieval")[0]
    assert (record["lang"], record["source"], record["instruction"]) == ("mul", "news", "Find it")


def test_map_reads_fields_from_other_columns(tmp_path):
    data = tmp_path / "pairs.jsonl"
    data.write_text(json.dumps({"headline": "A headline", "article": "The article text."}) + "\n", encoding="utf-8")
    result = cli(
        "ingest",
        data,
        "--shape",
        "title-body",
        "--map",
        "title=headline",
        "--map",
        "body=article",
        "--out",
        tmp_path / "o",
    )
    assert result.exit_code == 0, result.output
    assert rows(tmp_path / "o", "retrieval")[0]["positive"] == "The article text."


def test_outputs_load_with_pyarrow_and_hf_datasets(tmp_path):
    datasets = pytest.importorskip("datasets")
    for sample, shape, flags, task, expected in (SAMPLE_RUNS[0], SAMPLE_RUNS[7], SAMPLE_RUNS[9]):
        out = ingest(tmp_path, sample, shape, *flags)
        files = [str(part.path) for part in list_parts(out)]
        assert sum(pq.read_table(f).num_rows for f in files) == expected
        loaded = datasets.load_dataset("parquet", data_files=files, split="train", cache_dir=str(tmp_path / "hf"))
        assert loaded.num_rows == expected
        assert set(loaded.column_names) == set(ARROW_SCHEMAS[Task(task)].names)


def test_a_folder_stands_for_its_data_files(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.jsonl").write_text(json.dumps({"question": "qa", "answer": "aa"}) + "\n", encoding="utf-8")
    (folder / "b.csv").write_text("question,answer\nqb,ab\n", encoding="utf-8")
    (folder / "notes.txt").write_text("not data\n", encoding="utf-8")
    result = cli("ingest", folder, "--shape", "qa", "--out", tmp_path / "o")
    assert result.exit_code == 0, result.output
    assert [(r["query"], r["source"]) for r in rows(tmp_path / "o", "retrieval")] == [("qa", "a"), ("qb", "b")]


def test_chat_language_is_guessed_from_the_user_turn_not_the_system_prompt(tmp_path):
    chat = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "明天北京会下雨吗？"},
        {"role": "assistant", "content": "天气预报说明天北京多云，不会下雨。"},
    ]
    data = tmp_path / "chat.jsonl"
    data.write_text(json.dumps({"messages": chat}, ensure_ascii=False) + "\n", encoding="utf-8")
    assert cli("ingest", data, "--shape", "chat-qa", "--out", tmp_path / "o").exit_code == 0
    assert rows(tmp_path / "o", "retrieval")[0]["lang"] == "zh"


def test_map_reaches_into_nested_columns_with_a_dotted_path(tmp_path):
    squad = {
        "context": "The Amazon is the largest rainforest on Earth.",
        "question": "What is the largest rainforest?",
        "answers": {"text": ["The Amazon"], "answer_start": [0]},
    }
    empty = {**squad, "answers": {"text": [], "answer_start": []}}
    data = tmp_path / "squad.jsonl"
    data.write_text("\n".join(json.dumps(row) for row in (squad, empty)) + "\n", encoding="utf-8")
    out = tmp_path / "o"
    result = cli("ingest", data, "--shape", "reading", "--map", "answer=answers.text.0", "--out", out)
    assert result.exit_code == 0, result.output
    (record,) = rows(out, "retrieval")
    assert record["positive"] == "The Amazon"
    assert "extra" not in json.loads(record["meta"])
    assert [(r["location"], r["rule"]) for r in rejects(out)] == [("squad.jsonl:line 2", "missing_field")]


def test_config_tables_set_map_joiners_and_label_map(tmp_path):
    data = tmp_path / "mrc.jsonl"
    row = {"passage": "P.", "q": "Q?", "a": "A.", "language": "en"}
    data.write_text(json.dumps(row) + "\n", encoding="utf-8")
    config = tmp_path / "ingest.toml"
    config.write_text(
        '[ingest]\nshape = "reading"\nmap = {context = "passage", question = "q", answer = "a", lang = "language"}\n'
        'joiner = {en = " || "}\n',
        encoding="utf-8",
    )
    result = cli("ingest", data, "--config", config, "--out", tmp_path / "o")
    assert result.exit_code == 0, result.output
    assert rows(tmp_path / "o", "retrieval")[0]["query"] == "P. || Q?"
