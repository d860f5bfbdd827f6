"""`synth inspect DIR`: schema, counts per task / origin / source / lang, samples and rejects of a stage directory."""

from __future__ import annotations

import json

from helpers import SAMPLES, synth_process
from ingest_fixtures import cli, write_lines


def test_inspect_reports_counts_samples_and_rejects(tmp_path):
    out = tmp_path / "out"
    bad = write_lines(tmp_path / "extra.jsonl", ['{"question": "q", "answer": ""}', "{oops"])
    assert cli("ingest", SAMPLES / "qa.jsonl", bad, "--shape", "qa", "--out", out).exit_code == 0
    result = cli("inspect", out, "--json", "--samples", "2")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    retrieval = report["tasks"]["retrieval"]
    assert report["stage"] == "ingest"
    assert (retrieval["rows"], retrieval["parts"]) == (7, 2)
    assert retrieval["lang"] == {"en": 4, "zh": 3}
    assert retrieval["source"] == {"qa": 7}
    assert retrieval["origin"] == {"source": 7}
    assert retrieval["schema"]["negatives"] == "list<element: string>"
    assert [s["query"] for s in retrieval["samples"]] == [
        "How long should I boil an egg for a runny yolk?",
        "Why does my sourdough bread come out dense?",
    ]
    assert report["rejects"]["by_rule"] == {"empty_field": 1, "malformed_json": 1}
    assert report["rejects"]["examples"]["malformed_json"][0]["location"] == "extra.jsonl:line 2"


def test_inspect_prints_tables_for_people(tmp_path):
    out = tmp_path / "out"
    assert cli("ingest", SAMPLES / "nli.parquet", "--shape", "nli", "--out", out).exit_code == 0
    result = cli("inspect", out)
    assert result.exit_code == 0, result.output
    for expected in (
        "stage: ingest",
        "sts: 26 rows in 1 parts",
        "rows by origin, source and lang",
        "text_a",
        "rejects: 0",
    ):
        assert expected in result.output


def test_inspect_of_a_missing_directory_is_a_usage_error(tmp_path):
    result = synth_process("inspect", tmp_path / "nowhere")
    assert result.returncode == 2
    assert "not a directory" in result.stderr
