"""The reusable readers: formats, BOM/CRLF, gzip, TSV quotes, giant lines, chunk digests that depend on their rows."""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ingest_fixtures import cli, rows

from synth.errors import InputFileError
from synth.ingest.readers import read_chunks, read_rows


def test_jsonl_with_bom_crlf_and_gzip_reads_the_same_rows(tmp_path):
    text = '\ufeff{"a": "x"}\r\n\r\n{"a": "y"}\r\n'
    plain = tmp_path / "rows.jsonl"
    plain.write_text(text, encoding="utf-8")
    packed = tmp_path / "rows.jsonl.gz"
    packed.write_bytes(gzip.compress(text.encode("utf-8")))
    for path in (plain, packed):
        found = [(row.location, row.values) for row in read_rows(path)]
        assert found == [(f"{path.name}:line 1", {"a": "x"}), (f"{path.name}:line 3", {"a": "y"})]


def test_gzip_input_names_its_source_without_extensions(tmp_path):
    path = tmp_path / "wiki.v2.jsonl.gz"
    path.write_bytes(gzip.compress(json.dumps({"title": "t", "body": "b"}).encode()))
    assert cli("ingest", path, "--shape", "title-body", "--out", tmp_path / "o").exit_code == 0
    assert rows(tmp_path / "o", "retrieval")[0]["source"] == "wiki.v2"


def test_tsv_quotes_are_text(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text('a\tb\n"quoted" start\tsays "hi"\n', encoding="utf-8")
    assert [row.values for row in read_rows(path)] == [{"a": '"quoted" start', "b": 'says "hi"'}]


def test_a_giant_csv_line_is_skipped_without_losing_the_next_row(tmp_path):
    path = tmp_path / "big.csv"
    path.write_bytes(b"a,b\n" + b"x" * 5000 + b",y\nsmall,row\n")
    found = list(read_rows(path, max_record_bytes=1000))
    assert [(r.location, r.rule) for r in found] == [("big.csv:line 2", "too_large"), ("big.csv:line 3", "")]
    assert found[1].values == {"a": "small", "b": "row"}


def test_chunk_digests_depend_only_on_their_own_rows(tmp_path):
    path = tmp_path / "rows.jsonl"
    lines = [json.dumps({"n": i}) for i in range(9)]
    path.write_text("\n".join(lines) + "\n")
    before = [(c.span, c.digest) for c in read_chunks(path, rows=3)]
    lines[4] = json.dumps({"n": "changed"})
    path.write_text("\n".join(lines) + "\n")
    after = [(c.span, c.digest) for c in read_chunks(path, rows=3)]
    assert [span for span, _ in before] == ["lines 1-3", "lines 4-6", "lines 7-9"]
    assert [b == a for b, a in zip(before, after, strict=True)] == [True, False, True]


def test_parquet_reads_by_row_batches(tmp_path):
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"n": list(range(7))}), path)
    chunks = list(read_chunks(path, rows=3))
    assert [c.span for c in chunks] == ["rows 0-2", "rows 3-5", "rows 6-6"]
    assert [r.values for r in chunks[2].load()] == [{"n": 6}]
    assert [r.location for r in read_rows(path)][-1] == "rows.parquet:row 6"


def test_format_override_and_errors(tmp_path):
    path = tmp_path / "rows.txt"
    path.write_text('{"a": 1}\n')
    assert [r.values for r in read_rows(path, "jsonl")] == [{"a": 1}]
    assert [r.values for r in read_rows(path)] == [{"text": '{"a": 1}\n', "id": "rows.txt"}]  # a text document
    with pytest.raises(InputFileError, match="cannot tell the format"):
        list(read_rows(path.rename(tmp_path / "rows.dat")))
    with pytest.raises(InputFileError, match="input file not found"):
        list(read_rows(tmp_path / "none.jsonl"))


def test_a_giant_nested_parquet_cell_is_too_large(tmp_path):
    chat = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    giant = [{"role": "user", "content": "x" * 5000}, {"role": "assistant", "content": "y"}]
    pq.write_table(pa.table({"messages": [chat, giant, chat]}), tmp_path / "chats.parquet")
    found = list(read_rows(tmp_path / "chats.parquet", max_record_bytes=1000))
    assert [(r.location, r.rule) for r in found] == [
        ("chats.parquet:row 0", ""),
        ("chats.parquet:row 1", "too_large"),
        ("chats.parquet:row 2", ""),
    ]
    assert found[2].values == {"messages": chat}
