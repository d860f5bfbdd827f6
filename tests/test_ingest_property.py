"""Property: ingest never raises on arbitrary input, and every input row is either a record or a reject."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synth.ingest.spec import INGEST
from synth.schema import record_id

anything = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(), st.lists(st.text(), max_size=3))


def ingest(path: Path, shape: str, **options) -> tuple[int, int, int]:
    out = path.parent / "out"
    summary = INGEST.run({**INGEST.defaults(), "inputs": [path], "shape": shape, "out": out, **options})
    return summary.rows_in, summary.rows_out, summary.rejected


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(st.text(), min_size=1, max_size=8))
def test_arbitrary_text_lines_never_raise(lines):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "in.jsonl"
        # Lone surrogates cannot be written as UTF-8: they reach the file as invalid bytes, as in real dumps.
        path.write_bytes("\n".join(lines).encode("utf-8", errors="surrogatepass"))
        rows_in, rows_out, rejected = ingest(path, "qa")
        assert rows_out + rejected == rows_in


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(st.tuples(anything, anything, anything), min_size=1, max_size=6))
def test_arbitrary_values_in_every_field_never_raise(values):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "in.jsonl"
        lines = [json.dumps({"text_a": a, "text_b": b, "score": s}, ensure_ascii=False) for a, b, s in values]
        path.write_text("\n".join(lines), encoding="utf-8", errors="surrogatepass")
        rows_in, rows_out, rejected = ingest(path, "sts-score", score_range="0,5", both_directions=False)
        assert rows_out + rejected == rows_in == len(values)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=200))
def test_arbitrary_csv_text_never_raises(text):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "in.csv"
        path.write_text("question,answer\n" + text, encoding="utf-8")
        rows_in, rows_out, rejected = ingest(path, "qa")
        assert rows_out + rejected == rows_in


unicode_text = st.text(alphabet=st.characters(blacklist_categories=["Cs"]))  # ingest rejects lone surrogates earlier


@settings(max_examples=300, deadline=None)
@given(query=unicode_text, positive=unicode_text)
def test_record_id_is_the_hash_of_the_json_of_its_defining_fields(query, positive):
    payload = json.dumps(["retrieval", query, positive], ensure_ascii=False)
    expected = hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]
    assert record_id("retrieval", {"query": query, "positive": positive}) == expected
