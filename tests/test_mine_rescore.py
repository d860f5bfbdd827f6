"""`synth mine --rescore-model`: a CrossEncoder built here from the shipped MiniLM weights (offline) re-scores the
candidates; the margins apply to its scores, records keep both scores, filter and export keep them aligned."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from typer.testing import CliRunner

from synth.cli import app
from synth.embed.factory import shipped_model_path
from synth.store import iter_rows
from tests.pipeline_fixtures import retrieval, write_stage
from tests.test_mine import PACKAGES, make_input

runner = CliRunner()


@pytest.fixture(scope="module")
def cross_encoder(tmp_path_factory) -> str:
    from sentence_transformers import CrossEncoder

    torch.manual_seed(0)  # the classification head is new: seeded, so its scores are the same every run
    path = tmp_path_factory.mktemp("ce") / "minilm-cross-encoder"
    CrossEncoder(shipped_model_path(), num_labels=1, device="cpu").save(str(path))
    return str(path)


def invoke(*args: str) -> None:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output + repr(result.exception)


def test_records_keep_embedder_and_cross_encoder_scores(tmp_path, cross_encoder):
    from sentence_transformers import CrossEncoder

    src = make_input(tmp_path / "in")
    out = tmp_path / "mine"
    invoke("mine", str(src), "--out", str(out), "-n", "2", "--range-max", "6", "--relative-margin", "none",
           "--rescore-model", cross_encoder, "--embed-cache", str(tmp_path / "cache"))
    rows = [r for r in iter_rows(out) if r["task"] == "retrieval"]
    assert len(rows) == len(PACKAGES)
    model = CrossEncoder(cross_encoder, device="cpu")
    for row in rows:
        assert len(row["negative_teacher_scores"]) == len(row["negatives"]) == len(row["negative_scores"])
        pairs = [(row["query"], row["positive"])] + [(row["query"], n) for n in row["negatives"]]
        expected = model.predict(pairs, show_progress_bar=False)
        assert [row["positive_teacher_score"], *row["negative_teacher_scores"]] == pytest.approx(expected, abs=1e-5)
    # the first record's LLM negative is scored by both too, and comes first
    first = next(r for r in rows if r["query"] == PACKAGES[0][0] and r["negative_origins"][0] == "llm")
    assert first["negatives"][0] == "Nano is a small text editor." and len(first["negative_teacher_scores"]) == 3


def test_margins_apply_to_the_cross_encoder_scores_and_export_carries_them(tmp_path, cross_encoder):
    src = make_input(tmp_path / "in")
    common = ["-n", "1", "--range-max", "6", "--relative-margin", "none", "--rescore-model", cross_encoder,
              "--embed-cache", str(tmp_path / "cache")]
    invoke("mine", str(src), "--out", str(tmp_path / "all"), *common)
    mined = [s for r in iter_rows(tmp_path / "all") if r["task"] == "retrieval"
             for s, o in zip(r["negative_teacher_scores"], r["negative_origins"], strict=True) if o == "mined"]
    ceiling = float(np.median(mined))
    invoke("mine", str(src), "--out", str(tmp_path / "capped"), *common, "--max-score", str(ceiling))
    capped = [r for r in iter_rows(tmp_path / "capped") if r["task"] == "retrieval"]
    teacher = [s for r in capped for s, o in zip(r["negative_teacher_scores"], r["negative_origins"], strict=True)
               if o == "mined"]
    assert teacher and max(teacher) < ceiling  # a cap on the cross-encoder's scale, not the embedder's cosines
    assert any(s >= ceiling for s in mined)
    # the filter drops the LLM negative of the first record with its teacher score; export writes the margins
    invoke("filter", str(tmp_path / "capped"), "--out", str(tmp_path / "final"), "--dedup", "off",
           "--min-score", "off", "--false-negative-margin", "off", "--relative-margin", "0.99")
    final = {r["query"] + r["positive"]: r for r in iter_rows(tmp_path / "final") if r["task"] == "retrieval"}
    for row in capped:
        kept = final[row["query"] + row["positive"]]
        keep = [i for i, o in enumerate(row["negative_origins"]) if o == "mined"]
        assert kept["negative_teacher_scores"] == [row["negative_teacher_scores"][i] for i in keep]
    invoke("export", str(tmp_path / "final"), "--out", str(tmp_path / "export"), "--num-negatives", "1")
    files = (tmp_path / "export").glob("sentence-transformers/retrieval/*")
    exported = {r["anchor"] + r["positive"]: r for path in files for r in pq.read_table(path).to_pylist()}
    for key, row in final.items():
        if row["negatives"]:
            expected = row["positive_teacher_score"] - row["negative_teacher_scores"][0]
            assert exported[key]["label"] == pytest.approx(expected)


def test_without_rescoring_records_have_no_teacher_scores(tmp_path):
    src = write_stage(tmp_path / "in", [[retrieval(q, p) for q, p in PACKAGES]])
    invoke("mine", str(src), "--out", str(tmp_path / "mine"), "-n", "1", "--embed-cache", str(tmp_path / "cache"))
    assert all(r["negative_teacher_scores"] is None for r in iter_rows(tmp_path / "mine"))
