"""The shard store and the part-wise stage runner: atomic parts, manifest, resume, stale parts, failures."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synth.errors import InputFileError
from synth.schema import ARROW_SCHEMAS, REJECT_SCHEMA, RetrievalRecord, Task, record_id, to_table, validate_row
from synth.stage import PartResult, Stage, run_stage
from synth.store import Manifest, list_parts, reject, write_part, write_rejects


def retrieval_row(query: str, positive: str) -> dict:
    return RetrievalRecord(query=query, positive=positive, instruction="i", lang="en", source="t").model_dump(
        mode="json"
    )


def make_input(directory: Path, parts: list[list[tuple[str, str]]]) -> Path:
    for index, pairs in enumerate(parts):
        write_part(directory, Task.RETRIEVAL, f"part-{index:05d}", [retrieval_row(q, p) for q, p in pairs])
    return directory


class UpperStage(Stage):
    """Uppercases queries; rejects queries containing 'bad'; counts its calls so tests can see skips."""

    name = "upper"

    def __init__(self, suffix: str = "", fail_on: str | None = None):
        self.suffix = suffix
        self.fail_on = fail_on
        self.calls = 0

    def config(self) -> dict:
        return {"suffix": self.suffix}

    def process(self, part, table: pa.Table) -> PartResult:
        self.calls += 1
        rows, rejects, failed = [], [], 0
        for row in table.to_pylist():
            if "bad" in row["query"]:
                rejects.append(reject(self.name, f"id {row['id']}", "bad_query", "query says bad", row))
            elif self.fail_on and self.fail_on in row["query"]:
                failed += 1
            else:
                rows.append({**row, "query": row["query"].upper() + self.suffix})
        return PartResult(rows, rejects, {"seen": table.num_rows}, failed)


def test_record_id_is_stable_and_content_defined():
    first = record_id("retrieval", {"query": "q", "positive": "p"})
    assert first == record_id(Task.RETRIEVAL, {"query": "q", "positive": "p", "lang": "zh"})
    assert first != record_id("retrieval", {"query": "p", "positive": "q"})
    assert first != record_id("sts", {"text_a": "q", "text_b": "p"})
    assert retrieval_row("q", "p")["id"] == first


def test_record_id_golden_values():
    """Fixed values: the same record gets the same id on any machine and in any later version."""
    assert record_id("retrieval", {"query": "q", "positive": "p"}) == "15f3481314bc50726cb2654a651207c4"
    assert record_id("sts", {"text_b": "cat", "text_a": "猫"}) == "80fd51cca2f21c6866b9b20c5bbac29d"


def test_validated_rows_of_every_task_get_their_golden_ids():
    """`validate_row` hashes the validated fields themselves (no dump of the model): the ids stay what they were."""
    base = {"instruction": "i", "lang": "en", "source": "s"}
    assert validate_row("retrieval", {**base, "query": "q", "positive": "p"})["id"] == \
        "15f3481314bc50726cb2654a651207c4"
    assert validate_row("sts", {**base, "text_a": "猫", "text_b": "cat", "score": 0.5})["id"] == \
        "80fd51cca2f21c6866b9b20c5bbac29d"
    assert validate_row("cls", {**base, "text": "新闻", "label": "财经"})["id"] == "2245a209332015fa426a88e9d443b081"
    passage = {**base, "text": "t", "document_id": "d", "chunk_index": 2, "char_start": 0, "char_end": 1}
    assert validate_row("passage", passage)["id"] == "cf2dfa46199f0c9fc0eb2b2801c6373d"


def test_rejects_are_written_as_made(tmp_path: Path):
    """A reject's record is the JSON `json.dumps` writes (any value, any script); its file holds every reject."""
    records = [{"query": "长城", "at": datetime(2024, 1, 2), "path": Path("a")}, "raw line", ["x", 1.5, None]]
    rejects = [reject("s", f"f:row {i}", "rule", "why", r, kind="negative" if i else "record")
               for i, r in enumerate(records)]
    assert [r["record"] for r in rejects] == [json.dumps(records[0], ensure_ascii=False, default=str), "raw line",
                                              '["x", 1.5, null]']
    rel = write_rejects(tmp_path, Task.RETRIEVAL, "part-00000", rejects)
    table = pq.read_table(tmp_path / rel)
    assert table.schema == REJECT_SCHEMA
    assert table.to_pylist() == rejects


def test_models_reject_instead_of_coercing():
    with pytest.raises(ValueError):
        validate_row("retrieval", {"query": "", "positive": "p", "instruction": "", "lang": "en", "source": "s"})
    with pytest.raises(ValueError):
        validate_row("sts", {"text_a": "a", "text_b": "b", "score": 1.5, "instruction": "", "lang": "en",
                             "source": "s"})
    with pytest.raises(ValueError):
        validate_row("cls", {"text": 3, "label": "x", "instruction": "", "lang": "en", "source": "s"})


def test_to_table_has_exact_task_schema():
    table = to_table("retrieval", [retrieval_row("q", "p")])
    assert table.schema == ARROW_SCHEMAS[Task.RETRIEVAL]


def test_stage_runs_resumes_and_reports(tmp_path: Path):
    source = make_input(tmp_path / "in", [[("a", "pa"), ("bad one", "pb")], [("c", "pc")]])
    out = tmp_path / "out"
    stage = UpperStage()
    summary = run_stage(stage, [source], out, quiet=True)
    assert (summary.processed, summary.skipped, summary.rows_out, summary.rejected) == (2, 0, 2, 1)
    assert summary.rejects_by_rule == {"bad_query": 1}
    queries = sorted(r["query"] for p in list_parts(out) for r in pq.read_table(p.path).to_pylist())
    assert queries == ["A", "C"]
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["totals"]["stats"]["seen"] == 3
    assert set(manifest["parts"]) == {"retrieval/part-00000", "retrieval/part-00001"}
    rejects = pq.read_table(out / "_rejects/retrieval/part-00000.parquet").to_pylist()
    assert rejects[0]["rule"] == "bad_query" and "bad one" in rejects[0]["record"]

    again = UpperStage()
    summary = run_stage(again, [source], out, quiet=True)
    assert (again.calls, summary.skipped, summary.rows_out) == (0, 2, 2)

    changed = UpperStage(suffix="!")
    run_stage(changed, [source], out, quiet=True)
    assert changed.calls == 2  # a new config redoes every part


def test_only_changed_input_part_is_redone(tmp_path: Path):
    source = make_input(tmp_path / "in", [[("a", "pa")], [("c", "pc")]])
    out = tmp_path / "out"
    run_stage(UpperStage(), [source], out, quiet=True)
    write_part(source, Task.RETRIEVAL, "part-00001", [retrieval_row("d", "pd")])
    stage = UpperStage()
    run_stage(stage, [source], out, quiet=True)
    assert stage.calls == 1


def test_deleted_output_part_is_rebuilt_and_stale_parts_removed(tmp_path: Path):
    source = make_input(tmp_path / "in", [[("a", "pa")], [("c", "pc")]])
    out = tmp_path / "out"
    run_stage(UpperStage(), [source], out, quiet=True)
    (out / "retrieval/part-00000.parquet").unlink()
    stage = UpperStage()
    run_stage(stage, [source], out, quiet=True)
    assert stage.calls == 1 and (out / "retrieval/part-00000.parquet").exists()

    (source / "retrieval/part-00001.parquet").unlink()
    run_stage(UpperStage(), [source], out, quiet=True)
    assert not (out / "retrieval/part-00001.parquet").exists()
    assert list(Manifest(out, "upper").parts) == ["retrieval/part-00000"]


def test_part_with_failures_is_written_and_redone(tmp_path: Path):
    source = make_input(tmp_path / "in", [[("a", "pa"), ("flaky", "pf")]])
    out = tmp_path / "out"
    summary = run_stage(UpperStage(fail_on="flaky"), [source], out, quiet=True)
    assert summary.failed == 1 and summary.rows_out == 1
    retry = UpperStage()
    summary = run_stage(retry, [source], out, quiet=True)
    assert retry.calls == 1 and summary.failed == 0 and summary.rows_out == 2


def test_missing_or_empty_input_is_a_usage_error(tmp_path: Path):
    with pytest.raises(InputFileError, match="input not found"):
        run_stage(UpperStage(), [tmp_path / "nope"], tmp_path / "out", quiet=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFileError, match="no Parquet parts"):
        run_stage(UpperStage(), [tmp_path / "empty"], tmp_path / "out", quiet=True)
    assert not (tmp_path / "out").exists()


def test_two_inputs_never_collide(tmp_path: Path):
    first = make_input(tmp_path / "a", [[("a", "pa")]])
    second = make_input(tmp_path / "b", [[("b", "pb")]])
    summary = run_stage(UpperStage(), [first, second], tmp_path / "out", quiet=True)
    assert summary.rows_out == 2 and len(list_parts(tmp_path / "out")) == 2


def test_no_temporary_files_left_behind(tmp_path: Path):
    source = make_input(tmp_path / "in", [[("a", "pa")]])
    run_stage(UpperStage(), [source], tmp_path / "out", quiet=True)
    assert not [p for p in (tmp_path / "out").rglob("*") if p.name.endswith(".tmp")]


class CrashingStage(UpperStage):
    """Raises on its second part, the way a stage stops on a fatal API error; records whether it was closed."""

    closed = False

    def process(self, part, table: pa.Table) -> PartResult:
        if self.calls == 1:
            raise RuntimeError("server said 401")
        return super().process(part, table)

    def close(self) -> None:
        self.closed = True


def test_a_stage_that_stops_with_an_error_is_closed_and_keeps_its_finished_parts(tmp_path: Path):
    source = make_input(tmp_path / "in", [[("a", "pa")], [("b", "pb")]])
    out = tmp_path / "out"
    stage = CrashingStage()
    with pytest.raises(RuntimeError, match="401"):
        run_stage(stage, [source], out, quiet=True)
    assert stage.closed
    assert list(Manifest(out, "upper").parts) == ["retrieval/part-00000"]
    resumed = UpperStage()
    assert run_stage(resumed, [source], out, quiet=True).rows_out == 2 and resumed.calls == 1
