"""The vectorised ingest path writes byte-identical parts and rejects to the row-by-row path, on any input."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synth.ingest.options import ingest_options
from synth.ingest.readers import read_chunks
from synth.ingest.spec import INGEST
from synth.ingest.vectorised import PYTHON_WHITESPACE, vectorised_part
from synth.schema import Task, record_id, text_record_ids
from tests.ingest_fixtures import write_lines


def ingest_both(path: Path, shape: str = "qa", **options) -> dict[str, bytes]:
    """Ingest with each path; asserts the two stage directories hold the same files, byte for byte, and the same
    manifest entries; returns the files (relative path -> bytes)."""
    outputs = []
    for vectorised in (True, False):
        out = path.parent / f"out-{vectorised}"
        INGEST.run({**INGEST.defaults(), "inputs": [path], "shape": shape, "out": out, "part_rows": 3,
                    "vectorised": vectorised, **options})
        files = {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.parquet"))}
        manifest = json.loads((out / "_manifest.json").read_text())
        parts = {key: {k: v for k, v in entry.items() if k not in ("seconds", "finished_at")}
                 for key, entry in manifest["parts"].items()}
        outputs.append((files, parts))
    (fast_files, fast_parts), (row_files, row_parts) = outputs
    assert fast_parts == row_parts
    assert fast_files.keys() == row_files.keys()
    for name, data in fast_files.items():
        assert data == row_files[name], name
    return fast_files


def fast_chunks(path: Path, shape: str = "qa", **options) -> list[bool]:
    """For each chunk of 3 rows: whether the vectorised path takes it."""
    opts = ingest_options({**INGEST.defaults(), "inputs": [path], "shape": shape, "out": path.parent / "x",
                           **options})
    return [vectorised_part(opts, "src", chunk) is not None for chunk in read_chunks(path, rows=3)]


def qa(question, answer, **extra) -> str:
    return json.dumps({"question": question, "answer": answer, **extra}, ensure_ascii=False)


VALID = [qa(f"How do I fix bike {i}?", f"Step {i}: tighten it.") for i in range(7)]

BAD = [
    '{"question": "q", "answer": ', "null", "[1, 2]", '"just a string"', qa("q", 5), qa("q", None),
    json.dumps({"question": "only"}), qa("q", "   "), qa("q", "\u3000"), qa("q", "\x1c"), qa("q", "\x85"), qa("", "a"),
    '{"question": "a", "question": "b", "answer": "c"}', '{"question": "x\\ud800", "answer": "y"}',
    '{"question": NaN, "answer": "y"}', '{"question": "tab\there", "answer": "y"}', qa("q", "a", lang="  "),
    qa("q", "a", lang=3), '{"question": "q", "answer": "a"} {"x": 1}', qa("q", "a", extra=1), qa("q", ["a"]),
    qa({"t": "q"}, "a"), qa("q", True), "  " + VALID[6] + "  ", qa("2020-01-01", "2020-01-02"),
]
"""Rows the row path rejects, or that this path leaves to it; each goes between two valid rows."""

CASES = {
    "plain": (VALID, {}),
    "chinese and escapes": ([qa("怎么修自行车？", "先检查链条。"), json.dumps({"question": "é ü", "answer": "ça"}),
                             qa("¿Cómo?", "Así."), qa("Как?", "Так.")], {}),
    "lang column": ([qa("q1", "a1", lang=" fr "), qa("q2", "a2", lang="de"), qa("q3", "a3", lang=None),
                     qa("怎么?", "这样", lang=None)], {}),
    "guessed langs": ([qa("怎么修自行车？", "先检查。"), qa("How?", "So."), qa("Как дела?", "Хорошо."), qa("1 2", "3")],
                      {}),
    "fixed lang": ([qa("q", "a", lang=5), *VALID[:4]], {"lang": "en"}),
    "mapped columns": ([json.dumps({"q": f"q{i}", "a": f"a{i}"}) for i in range(5)],
                       {"map": ["question=q", "answer=a"]}),
    "same column twice": ([json.dumps({"q": f"q{i}"}) for i in range(4)], {"map": ["question=q", "answer=q"]}),
    "bom crlf blank lines": (["\ufeff" + VALID[0] + "\r", "", "   ", VALID[1] + "\r", VALID[2], "", VALID[3]], {}),
    "bad rows mixed in": ([line for i, bad in enumerate(BAD) for line in (VALID[i % 7], bad, VALID[(i + 1) % 7])], {}),
    "emoji escapes": ([json.dumps({"question": "ok 😀", "answer": "a"}), *VALID[:2]], {}),
}


@pytest.mark.parametrize("name", CASES)
def test_both_paths_write_identical_parts(tmp_path, name):
    lines, options = CASES[name]
    ingest_both(write_lines(tmp_path / "in.jsonl", lines), **options)


def test_bad_bytes_and_giant_lines_are_located_the_same(tmp_path):
    lines = [*VALID[:3], VALID[3].encode() + b"\xff", VALID[4], b'{"question": "q", "answer": "' + b"x" * 300 + b'"}',
             VALID[5].encode(), b"\xef\xbb\xbf" + VALID[6].encode()]
    files = ingest_both(write_lines(tmp_path / "in.jsonl", lines), max_record_bytes=200)
    assert any(name.startswith("_rejects") for name in files)


@pytest.mark.parametrize("shape, fields", [("title-body", ("title", "body")), ("title-abstract", ("title", "abstract")),
                                           ("claim-evidence", ("claim", "evidence"))])
def test_other_pair_shapes_take_the_vectorised_path(tmp_path, shape, fields):
    lines = [json.dumps(dict(zip(fields, (f"t{i}", f"b{i}"), strict=True))) for i in range(6)]
    path = write_lines(tmp_path / "in.jsonl", [*lines, json.dumps({fields[0]: "t"})])
    assert fast_chunks(path, shape) == [True, True, False]
    ingest_both(path, shape)


def test_chunks_with_anything_unusual_take_the_row_path(tmp_path):
    path = write_lines(tmp_path / "in.jsonl", [*VALID[:3], qa("q", "a", id=1), *VALID[3:5],
                                               qa("q", "a"), "null", qa("q", "a")])
    assert fast_chunks(path) == [True, False, False]
    assert fast_chunks(path, "qa", map=["question=question.text"]) == [False, False, False]
    assert fast_chunks(path, "sts-binary") == [False, False, False]
    csv_path = tmp_path / "in.csv"
    csv_path.write_text("question,answer\nq,a\n", encoding="utf-8")
    assert fast_chunks(csv_path) == [False]


PARQUET_CASES = {
    "plain": pa.table({"question": [f"q{i}" for i in range(7)], "answer": [f"a{i}" for i in range(7)]}),
    "nulls and blanks": pa.table({"question": ["q0", None, "q2", "q3", "\u3000", "q5", "q6"],
                                  "answer": ["a0", "a1", "a2", "a3", "a4", "a5", "a6"]}),
    "large strings and lang": pa.table({
        "question": pa.array(["q0", "怎么", "q2", "q3"], pa.large_string()),
        "answer": pa.array(["a0", "这样", "a2", "a3"], pa.large_string()),
        "lang": ["en", None, " de ", "fr"],
    }),
    "blank lang": pa.table({"question": ["q0", "q1", "q2", "q3"], "answer": ["a0", "a1", "a2", "a3"],
                            "lang": ["en", "de", " ", "fr"]}),
    "extra column": pa.table({"question": ["q0", "q1"], "answer": ["a0", "a1"], "n": [1, 2]}),
    "binary answer": pa.table({"question": ["q0", "q1"], "answer": pa.array([b"a0", b"a1"], pa.binary())}),
    "a giant row": pa.table({"question": ["q0", "q1", "q2", "q3"], "answer": ["a0", "a" * 500, "a2", "a3"]}),
}


@pytest.mark.parametrize("name", PARQUET_CASES)
def test_both_paths_write_identical_parts_from_parquet(tmp_path, name):
    path = tmp_path / "in.parquet"
    pq.write_table(PARQUET_CASES[name], path, row_group_size=3)
    ingest_both(path, max_record_bytes=300)


def test_valid_parquet_chunks_take_the_vectorised_path(tmp_path):
    path = tmp_path / "in.parquet"
    pq.write_table(PARQUET_CASES["nulls and blanks"], path)
    assert fast_chunks(path) == [False, False, True]


def test_whitespace_is_what_python_strips():
    assert "".join(chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()) == PYTHON_WHITESPACE


def test_text_record_ids_are_record_ids():
    queries, positives = ["q", "怎么", 'a "quoted"\n\\'], ["p", "这样", "\x00\u2028"]
    expected = [record_id(Task.RETRIEVAL, {"query": q, "positive": p}) for q, p in zip(queries, positives, strict=True)]
    assert text_record_ids(Task.RETRIEVAL, [queries, positives]) == expected


field_values = st.one_of(
    st.text(max_size=12), st.sampled_from(["", " ", "\u3000", "\x1c", "怎么", "😀", "2020-01-01"]),
    st.none(), st.integers(), st.booleans(), st.lists(st.text(max_size=3), max_size=2),
)
raw_lines = st.sampled_from(["null", "[]", "{", '"x"', "{}", '{"question": "a", "question": "b", "answer": "c"}'])
rows = st.one_of(
    st.builds(lambda q, a: {"question": q, "answer": a}, st.text(min_size=1, max_size=12), st.text(min_size=1)),
    st.builds(lambda q, a: {"question": q, "answer": a}, field_values, field_values),
    st.builds(lambda q, a, lang: {"question": q, "answer": a, "lang": lang}, st.text(min_size=1), st.text(min_size=1),
              st.one_of(st.none(), st.sampled_from(["en", " zh ", "", "  "]), st.integers())),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=st.lists(st.one_of(rows, raw_lines), min_size=1, max_size=10), ascii_only=st.booleans())
def test_any_mix_of_rows_gives_identical_parts(items, ascii_only):
    with tempfile.TemporaryDirectory() as tmp:
        lines = [item if isinstance(item, str) else json.dumps(item, ensure_ascii=ascii_only) for item in items]
        path = Path(tmp) / "in.jsonl"
        path.write_bytes("\n".join(lines).encode("utf-8", errors="surrogatepass"))
        ingest_both(path)
