"""Bad input: every bad row lands in _rejects/ with its location and rule, nothing valid is lost; bad runs exit 2."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import SAMPLES, synth_process
from ingest_fixtures import cli, rejects, rows, write_lines


def qa(question, answer) -> str:
    return json.dumps({"question": question, "answer": answer}, ensure_ascii=False)


def by_location(out) -> dict[str, dict]:
    return {r["location"]: r for r in rejects(out)}


def rules_by_location(out) -> dict[str, str]:
    return {r["location"]: r["rule"] for r in rejects(out)}


def test_jsonl_bad_lines_become_rejects_and_every_valid_row_survives(tmp_path):
    data = write_lines(
        tmp_path / "bad.jsonl",
        [
            qa("good one", "answer one"),
            '{"question": "broken", ',
            b'{"question": "\xff\xfe", "answer": "x"}',
            qa("giant", "y" * 500),
            "[1, 2, 3]",
            json.dumps({"answer": "no question"}),
            qa(None, "null question"),
            qa("   ", "blank question"),
            qa(42, "number question"),
            '{"question": "lone \\ud800 surrogate", "answer": "z"}',
            "",
            qa("good two", "answer two"),
        ],
    )
    out = tmp_path / "out"
    result = cli("ingest", data, "--shape", "qa", "--out", out, "--max-record-bytes", "300", "--part-rows", "4")
    assert result.exit_code == 0, result.output
    assert [r["query"] for r in rows(out, "retrieval")] == ["good one", "good two"]
    assert rules_by_location(out) == {
        "bad.jsonl:line 2": "malformed_json",
        "bad.jsonl:line 3": "invalid_utf8",
        "bad.jsonl:line 4": "too_large",
        "bad.jsonl:line 5": "not_an_object",
        "bad.jsonl:line 6": "missing_field",
        "bad.jsonl:line 7": "null_field",
        "bad.jsonl:line 8": "empty_field",
        "bad.jsonl:line 9": "wrong_type",
        "bad.jsonl:line 10": "invalid_unicode",
    }
    assert json.loads(by_location(out)["bad.jsonl:line 9"]["record"]) == {"question": 42, "answer": "number question"}
    assert "rejected" in result.output and "malformed_json" in result.output
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["totals"]["rows_rejected"] == 9 and manifest["totals"]["rows_out"] == 2


def test_csv_bad_records_are_located_by_line(tmp_path):
    data = tmp_path / "bad.csv"
    data.write_bytes(
        b'\xef\xbb\xbfquestion,answer\r\nq1,"a multi\r\nline answer"\r\nq2,a2,extra\r\nq3,\r\n\xff,a4\r\nq5,a5\r\n'
    )
    out = tmp_path / "out"
    assert cli("ingest", data, "--shape", "qa", "--out", out).exit_code == 0
    assert [(r["query"], r["positive"]) for r in rows(out, "retrieval")] == [
        ("q1", "a multi\r\nline answer"),
        ("q5", "a5"),
    ]
    assert rules_by_location(out) == {
        "bad.csv:line 4": "malformed_csv",
        "bad.csv:line 5": "empty_field",
        "bad.csv:line 6": "invalid_utf8",
    }


def test_csv_unclosed_quote_keeps_the_swallowed_lines_in_the_reject(tmp_path):
    data = tmp_path / "quote.csv"
    data.write_text('question,answer\nq1,a1\n"q2,a2\nq3,a3\n', encoding="utf-8")
    out = tmp_path / "out"
    assert cli("ingest", data, "--shape", "qa", "--out", out).exit_code == 0
    assert [r["query"] for r in rows(out, "retrieval")] == ["q1"]
    (bad,) = rejects(out)
    assert (bad["location"], bad["rule"]) == ("quote.csv:line 3", "malformed_csv")
    assert "q3,a3" in bad["record"]


@pytest.mark.parametrize(
    ("shape", "flags", "row", "rule"),
    [
        ("sts-binary", [], {"text_a": "a", "text_b": "b", "label": "maybe"}, "unknown_label"),
        ("sts-binary", [], {"text_a": "a", "text_b": "b", "label": 2}, "unknown_label"),
        ("sts-binary", [], {"text_a": "a", "text_b": "b", "label": 1.0}, "unknown_label"),
        ("sts-binary", [], {"text_a": "a", "text_b": 7, "label": 1}, "wrong_type"),
        ("sts-score", ["--score-range", "0,5"], {"text_a": "a", "text_b": "b", "score": 5.5}, "out_of_range"),
        ("sts-score", ["--score-range", "0,5"], {"text_a": "a", "text_b": "b", "score": "high"}, "wrong_type"),
        ("sts-score", ["--score-range", "0,5"], {"text_a": "a", "text_b": "b", "score": True}, "wrong_type"),
        ("sts-score", ["--score-range", "0,5"], {"text_a": "a", "text_b": "b", "score": "NaN"}, "wrong_type"),
        ("nli", [], {"premise": "a", "hypothesis": "b", "label": "entails"}, "unknown_label"),
        ("nli", [], {"premise": "a", "hypothesis": "b", "label": 0}, "unknown_label"),
        ("cls", [], {"text": "a", "label": True}, "wrong_type"),
        ("cls", [], {"text": "a", "label": ""}, "empty_field"),
        ("chat-qa", [], {"messages": "not json"}, "wrong_type"),
        ("chat-qa", [], {"messages": [{"role": "assistant", "content": "hi"}]}, "no_qa_turn"),
        ("reading", [], {"context": "c", "question": "q", "answer": ["a"]}, "wrong_type"),
        ("qa", [], {"question": "q", "answer": "a", "lang": 5}, "wrong_type"),
    ],
)
def test_wrong_values_are_rejects_never_coerced(tmp_path, shape, flags, row, rule):
    good = {
        "sts-binary": {"text_a": "x", "text_b": "y", "label": "1"},
        "sts-score": {"text_a": "x", "text_b": "y", "score": "2.5"},
        "nli": {"premise": "x", "hypothesis": "y", "label": "NEUTRAL"},
        "cls": {"text": "x", "label": 3},
        "chat-qa": {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]},
        "reading": {"context": "c", "question": "q", "answer": "a"},
        "qa": {"question": "x", "answer": "y"},
    }[shape]
    data = write_lines(tmp_path / "in.jsonl", [json.dumps(good), json.dumps(row)])
    out = tmp_path / "out"
    assert cli("ingest", data, "--shape", shape, "--out", out, "--no-both-directions", *flags).exit_code == 0
    assert [(r["location"], r["rule"]) for r in rejects(out)] == [("in.jsonl:line 2", rule)]
    task = {"sts-binary": "sts", "sts-score": "sts", "nli": "sts", "cls": "cls"}.get(shape, "retrieval")
    assert len(rows(out, task)) == 1


def test_label_map_turns_integer_nli_labels_into_names(tmp_path):
    lines = [json.dumps({"premise": "p", "hypothesis": f"h{i}", "label": i}) for i in range(3)]
    data = write_lines(tmp_path / "mnli.jsonl", lines)
    out = tmp_path / "out"
    flags = ["--label-map", "0=entailment", "--label-map", "1=neutral", "--label-map", "2=contradiction"]
    assert cli("ingest", data, "--shape", "nli", "--out", out, "--no-both-directions", *flags).exit_code == 0
    assert [(r["score"], r["label"]) for r in rows(out, "sts")] == [(1.0, "0"), (0.5, "1"), (0.0, "2")]


def test_parquet_nulls_wrong_types_and_giant_rows(tmp_path):
    table = pa.table({"question": ["ok", None, "big", "fine"], "answer": ["a", "b", "x" * 1000, "d"]})
    pq.write_table(table, tmp_path / "in.parquet")
    typed = pa.table({"question": [1, 2], "answer": ["a", "b"]})
    pq.write_table(typed, tmp_path / "numbers.parquet")
    out = tmp_path / "out"
    args = ["--shape", "qa", "--out", out, "--max-record-bytes", "500"]
    assert cli("ingest", tmp_path / "in.parquet", tmp_path / "numbers.parquet", *args).exit_code == 0
    assert [r["query"] for r in rows(out, "retrieval")] == ["ok", "fine"]
    assert rules_by_location(out) == {
        "in.parquet:row 1": "null_field",
        "in.parquet:row 2": "too_large",
        "numbers.parquet:row 0": "wrong_type",
        "numbers.parquet:row 1": "wrong_type",
    }


def run_failing(tmp_path, *args):
    out = tmp_path / "out"
    result = synth_process("ingest", *args, "--out", out)
    assert result.returncode == 2, result.stderr
    assert not out.exists()
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_usage_errors_exit_2_with_one_line_and_write_nothing(tmp_path):
    (tmp_path / "notes.txt").write_text("hello\n")
    (tmp_path / "fake.parquet").write_text("not parquet")
    headers = tmp_path / "h.csv"
    headers.write_text("q,a\nx,y\n")
    good = SAMPLES / "qa.jsonl"
    assert "input file not found" in run_failing(tmp_path, tmp_path / "missing.jsonl", "--shape", "qa")
    assert "missing.jsonl" in run_failing(tmp_path, good, tmp_path / "missing.jsonl", "--shape", "qa")
    assert "cannot tell the format" in run_failing(tmp_path, tmp_path / "notes.txt", "--shape", "qa")
    assert "unknown format 'xml'" in run_failing(tmp_path, good, "--shape", "qa", "--format", "xml")
    assert "not a readable Parquet file" in run_failing(tmp_path, tmp_path / "fake.parquet", "--shape", "qa")
    message = run_failing(tmp_path, headers, "--shape", "qa")
    assert "column 'question' not found" in message and "--map" in message and "columns: a, q" in message
    assert "unknown shape 'q-a'" in run_failing(tmp_path, good, "--shape", "q-a")
    assert "needs --score-range" in run_failing(tmp_path, SAMPLES / "sts_score.tsv", "--shape", "sts-score")
    assert "has no field 'query'" in run_failing(tmp_path, good, "--shape", "qa", "--map", "query=q")
    assert "unknown config key: shap" in run_failing(tmp_path, good, "--config", write_config(tmp_path))


def write_config(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[ingest]\nshap = "qa"\n')
    return path


def test_mapped_columns_are_checked_before_anything_is_written(tmp_path):
    headers = tmp_path / "h.csv"
    headers.write_text("q,a\nx,y\n")
    out = tmp_path / "out"
    assert (
        cli("ingest", headers, "--shape", "qa", "--map", "question=q", "--map", "answer=a", "--out", out).exit_code == 0
    )
    assert rows(out, "retrieval")[0]["query"] == "x"
