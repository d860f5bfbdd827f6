"""`synth ingest --shape documents`: every format and text folders -> passages with exact spans, stable ids,
located rejects for bad documents, resume by parts."""

from __future__ import annotations

import csv
import gzip
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import SAMPLES, synth_process
from ingest_fixtures import cli, rejects, rows, write_lines

from synth.ingest.documents import derived_id
from synth.schema import validate_row

WORDS = ("--chunk-tokenizer", "words")


def long_document(tag: str, sentences: int = 40) -> str:
    return "\n\n".join(" ".join(f"Sentence {tag} {p} {s} has some words." for s in range(8))
                       for p in range(sentences // 8))


def ingest(*args) -> None:
    result = cli("ingest", *args, "--shape", "documents", *WORDS)
    assert result.exit_code == 0, result.output


def check_spans(passages: list[dict], documents: dict[str, str]) -> None:
    for passage in passages:
        validate_row("passage", passage)
        document = documents[passage["document_id"]]
        assert document[passage["char_start"]:passage["char_end"]] == passage["text"]


def test_sample_documents_become_passages_with_title_url_and_exact_spans(tmp_path):
    out = tmp_path / "out"
    ingest(SAMPLES / "documents.jsonl", "--out", out, "--chunk-size", "60", "--chunk-max", "90")
    documents = [json.loads(line) for line in (SAMPLES / "documents.jsonl").read_text().splitlines()]
    passages = rows(out, "passage")
    assert {p["document_id"] for p in passages} == {d["id"] for d in documents}
    assert len(passages) > len(documents)
    check_spans(passages, {d["id"]: d["text"] for d in documents})
    first = next(p for p in passages if p["document_id"] == documents[0]["id"])
    assert (first["title"], first["url"], first["chunk_index"]) == (documents[0]["title"], documents[0]["url"], 0)
    assert {p["lang"] for p in passages} == {"en", "zh"}


@pytest.mark.parametrize("fmt", ["csv", "tsv", "parquet", "jsonl.gz"])
def test_tabular_formats_with_mapped_columns(tmp_path, fmt):
    body = long_document("a").replace("\n\n", " " if fmt == "tsv" else "\n\n")  # TSV has no newlines in a field
    table = pa.table({"body": [body, "Second document, short."], "doc_id": ["d1", "d2"],
                      "heading": ["One", "Two"]})
    path = tmp_path / f"docs.{fmt}"
    if fmt == "parquet":
        pq.write_table(table, path)
    elif fmt == "jsonl.gz":
        path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in table.to_pylist()).encode()))
    else:
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, delimiter="\t" if fmt == "tsv" else ",", quoting=csv.QUOTE_MINIMAL)
            writer.writerow(table.column_names)
            writer.writerows(zip(*table.to_pydict().values(), strict=True))
    out = tmp_path / "out"
    ingest(path, "--out", out, "--map", "text=body", "--map", "id=doc_id", "--map", "title=heading",
           "--chunk-size", "40", "--chunk-max", "60")
    passages = rows(out, "passage")
    check_spans(passages, dict(zip(table["doc_id"].to_pylist(), table["body"].to_pylist(), strict=True)))
    assert [p["chunk_index"] for p in passages if p["document_id"] == "d1"] == list(range(len(passages) - 1))
    assert {p["title"] for p in passages} == {"One", "Two"}


def test_without_an_id_column_the_id_is_the_hash_of_the_text(tmp_path):
    data = write_lines(tmp_path / "docs.jsonl", [json.dumps({"text": "Alpha text.\r\nSecond line."})])
    ingest(data, "--out", tmp_path / "out")
    [passage] = rows(tmp_path / "out", "passage")
    assert passage["document_id"] == derived_id("Alpha text.\nSecond line.")
    assert passage["text"] == "Alpha text.\nSecond line."  # CRLF normalised to LF


def test_a_folder_of_text_and_markdown_files_uses_relative_paths_as_ids(tmp_path):
    folder = tmp_path / "docs"
    (folder / "guides").mkdir(parents=True)
    texts = {"a.txt": long_document("a"), "guides/b.md": "# Title\n\nSome *markdown* text.",
             "guides/c.txt": "\ufeffBOM first. Then more."}
    for name, text in texts.items():
        (folder / name).write_text(text, encoding="utf-8")
    (folder / "notes.bin").write_bytes(b"\x00\x01")  # not a document extension: ignored
    out = tmp_path / "out"
    ingest(folder, "--out", out, "--chunk-size", "40", "--chunk-max", "60")
    passages = rows(out, "passage")
    assert {p["document_id"] for p in passages} == set(texts)
    check_spans(passages, {name: text.removeprefix("\ufeff") for name, text in texts.items()})
    assert rows(out, "passage")[-1]["source"] == "docs"
    assert rejects(out) == []


def test_bad_documents_are_located_rejects_and_nothing_valid_is_lost(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "good.txt").write_text("A good document.", encoding="utf-8")
    (folder / "empty.txt").write_text("  \n\t ", encoding="utf-8")
    (folder / "markup.md").write_text("<div><br/></div>\n# \n<!-- a comment -->\n---\n", encoding="utf-8")
    (folder / "binary.txt").write_bytes(b"PK\x03\x04\x00\x00binary")
    (folder / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (folder / "huge.txt").write_text("word " * 400, encoding="utf-8")
    locked = folder / "locked.txt"
    locked.write_text("secret", encoding="utf-8")
    locked.chmod(0)
    try:
        ingest(folder, "--out", tmp_path / "out", "--max-record-bytes", "1000")
    finally:
        locked.chmod(0o600)
    readable = ["good.txt", "locked.txt"] if os.geteuid() == 0 else ["good.txt"]  # root reads a file of mode 000
    assert [p["document_id"] for p in rows(tmp_path / "out", "passage")] == readable
    found = {r["location"]: r["rule"] for r in rejects(tmp_path / "out")}
    expected = {"docs/empty.txt": "empty_field", "docs/markup.md": "markup_only", "docs/binary.txt": "binary",
                "docs/latin1.txt": "invalid_utf8", "docs/huge.txt": "too_large"}
    if os.geteuid() != 0:
        expected["docs/locked.txt"] = "unreadable"
    assert {k: v for k, v in found.items() if k in expected} == expected


def test_ids_are_stable_across_runs_and_part_layouts_and_a_rerun_resumes(tmp_path):
    lines = [json.dumps({"text": long_document(str(i), 16)}) for i in range(7)]
    data = write_lines(tmp_path / "docs.jsonl", lines)
    by_layout = {}
    for part_rows in (2, 3, 7):
        out = tmp_path / f"out{part_rows}"
        ingest(data, "--out", out, "--part-rows", part_rows, "--chunk-size", "30", "--chunk-max", "45")
        by_layout[part_rows] = [(p["id"], p["document_id"], p["chunk_index"]) for p in rows(out, "passage")]
    assert by_layout[2] == by_layout[3] == by_layout[7]
    again = cli("ingest", data, "--shape", "documents", *WORDS, "--out", tmp_path / "out2", "--part-rows", 2,
                "--chunk-size", "30", "--chunk-max", "45")
    assert "4 of 4 parts already finished: skipped" in again.output
    changed = cli("ingest", data, "--shape", "documents", *WORDS, "--out", tmp_path / "out2", "--part-rows", 2,
                  "--chunk-size", "31", "--chunk-max", "45")
    assert "already finished" not in changed.output  # the chunk settings are in the config hash


def test_bad_chunk_settings_and_text_files_for_other_shapes_are_one_line_errors(tmp_path):
    result = synth_process("ingest", SAMPLES / "documents.jsonl", "--shape", "documents", "--out", tmp_path / "o",
                           "--chunk-size", "300", "--chunk-max", "200")
    assert result.returncode == 2 and "chunk_max (200) must be at least chunk_size (300)" in result.stderr
    (tmp_path / "notes.txt").write_text("hello\n")
    result = synth_process("ingest", tmp_path / "notes.txt", "--shape", "qa", "--out", tmp_path / "o")
    assert result.returncode == 2 and "a .txt / .md file is one document (--shape documents)" in result.stderr
