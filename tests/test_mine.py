"""`synth mine` end to end: real Parquet in and out, the real MiniLM model or a counting backend, real FAISS."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import faiss
import numpy as np
import pytest
from helpers import SYNTH, estimated, synth_process
from typer.testing import CliRunner

from synth.cli import app
from synth.mining import index as mining_index
from synth.schema import Task
from synth.store import iter_rows
from tests.embed_fixtures import CountingEmbedder
from tests.pipeline_fixtures import retrieval, sts, write_stage

runner = CliRunner()

PACKAGES = [
    ("text editor", "Vim is a highly configurable text editor for programmers."),
    ("text editor", "GNU Emacs is an extensible, customizable text editor."),
    ("web browser", "Firefox is a free and open-source web browser from Mozilla."),
    ("web browser", "Chromium is an open-source web browser project from Google."),
    ("image viewer", "feh is a fast and light image viewer for the X window system."),
    ("music player", "Rhythmbox is a music player and library organizer for GNOME."),
    ("audio player", "Audacious is a lightweight audio player with a small footprint."),
    ("file compression", "gzip compresses files using Lempel-Ziv coding (LZ77)."),
    ("archive tool", "GNU tar creates, extracts and lists archive files."),
    ("python interpreter", "Python is an interpreted, interactive, object-oriented programming language."),
    ("web server", "nginx is a high-performance web and reverse proxy server."),
    ("database server", "PostgreSQL is an advanced object-relational database server."),
]
# A case/whitespace variant of a positive (exact duplicate after normalisation) and a near-duplicate.
DUPLICATE = "VIM is a highly   configurable text editor for programmers."
NEAR_DUPLICATE = "Vim is a highly configurable text editor for programmers!"


def make_input(directory: Path) -> Path:
    rows = [retrieval(q, p) for q, p in PACKAGES]
    rows[0] = retrieval(*PACKAGES[0], negatives=["Nano is a small text editor."], negative_origins=["llm"])
    return write_stage(directory, [rows[:7], rows[7:], [sts("a cat", "a kitten", 0.9)]])


def mine(*args: str) -> None:
    result = runner.invoke(app, ["mine", *args])
    assert result.exit_code == 0, result.output + repr(result.exception)


def test_mines_with_minilm_and_never_returns_a_positive_or_its_duplicates(tmp_path):
    src = make_input(tmp_path / "in")
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": t}) + "\n" for t in
                              [DUPLICATE, NEAR_DUPLICATE, "text editor", "Kate is a text editor for KDE."]))
    out = tmp_path / "out"
    mine(str(src), "--out", str(out), "--embed-cache", str(tmp_path / "cache"), "--corpus", str(corpus),
         "--query-format", "{query}", "-n", "3", "--range-max", "8")
    rows = list(iter_rows(out, Task.RETRIEVAL))
    assert len(rows) == len(PACKAGES)
    positives = {}
    for q, p in PACKAGES:
        positives.setdefault(q, set()).add(p)
    for row in rows:
        mined = [n for n, o in zip(row["negatives"], row["negative_origins"], strict=True) if o == "mined"]
        assert len(mined) == 3
        assert not set(mined) & positives[row["query"]]
        assert row["query"] not in mined
        assert len(row["negative_scores"]) == len(row["negatives"])
        assert all(s < row["positive_score"] for s in row["negative_scores"][-3:])
        assert row["negative_scores"][-3:] == sorted(row["negative_scores"][-3:], reverse=True)
    editor = next(r for r in rows if r["positive"] == PACKAGES[0][1])
    assert editor["negatives"][0] == "Nano is a small text editor." and editor["negative_origins"][0] == "llm"
    assert isinstance(editor["negative_scores"][0], float)
    assert DUPLICATE not in editor["negatives"] and NEAR_DUPLICATE not in editor["negatives"]
    assert next(iter_rows(out, Task.STS))["text_b"] == "a kitten"  # other tasks pass through
    manifest = json.loads((out / "_manifest.json").read_text())
    stats = manifest["totals"]["stats"]
    assert stats["removed_positive"] > 0 and stats["removed_duplicate"] > 0 and stats["removed_query"] > 0
    assert stats["existing_negatives_scored"] == 1
    assert manifest["index"]["index"] == "flat" and manifest["index"]["gpus"] == 0


@pytest.fixture
def counting(monkeypatch) -> CountingEmbedder:
    """Every local embedder the CLI builds is this deterministic backend that counts its texts."""
    backend = CountingEmbedder()
    monkeypatch.setattr("synth.embed.factory.LocalEmbedder", lambda model, **options: backend)
    return backend


def test_rerun_and_resume_embed_nothing(tmp_path, counting):
    src = make_input(tmp_path / "in")
    out = tmp_path / "out"
    args = [str(src), "--out", str(out), "--embed-model", "bow", "--embed-cache", str(tmp_path / "cache")]
    mine(*args)
    embedded = len(counting.texts_seen)
    assert embedded == len(set(counting.texts_seen)) > 0
    mine(*args)  # every part done: nothing to do
    (out / "retrieval" / "part-00001.parquet").unlink()  # as if the run had stopped before this part
    mine(*args)
    assert len(counting.texts_seen) == embedded
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["index"]["built_this_run"] is False
    assert manifest["parts"]["retrieval/part-00001"]["stats"]["cache_hits"] > 0
    assert manifest["parts"]["retrieval/part-00001"]["stats"]["texts_embedded"] == 0


def test_exact_and_ivf_indexes_agree(tmp_path, counting):
    words = [f"w{i}" for i in range(60)]
    rng = np.random.default_rng(0)
    rows = [retrieval(" ".join(rng.choice(words, 3)), " ".join(rng.choice(words, 8))) for _ in range(300)]
    src = write_stage(tmp_path / "in", [rows])
    common = ["--embed-model", "bow", "--embed-cache", str(tmp_path / "cache"), "--relative-margin", "none"]
    mine(str(src), "--out", str(tmp_path / "flat"), *common)
    mine(str(src), "--out", str(tmp_path / "ivf"), *common, "--exact-max", "50", "--nlist", "4", "--nprobe", "4")
    assert json.loads((tmp_path / "ivf" / "_manifest.json").read_text())["index"]["index"] == "ivf"
    flat = [r["negatives"] for r in iter_rows(tmp_path / "flat")]
    ivf = [r["negatives"] for r in iter_rows(tmp_path / "ivf")]
    assert flat == ivf


def test_random_sampling_is_seeded(tmp_path, counting):
    src = make_input(tmp_path / "in")
    common = ["--embed-model", "bow", "--embed-cache", str(tmp_path / "cache"), "--sampling", "random", "-n", "2",
              "--range-max", "6"]
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        mine(str(src), "--out", str(tmp_path / name), *common, "--seed", seed)
    runs = {name: [r["negatives"] for r in iter_rows(tmp_path / name, Task.RETRIEVAL)] for name in "abc"}
    assert runs["a"] == runs["b"] and runs["a"] != runs["c"]


def test_corpus_file_only_keeps_positives_out_of_the_candidates(tmp_path, counting):
    src = make_input(tmp_path / "in")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("Kate is a text editor for KDE.\nEpiphany is a web browser.\nmpv is a media player.\n")
    out = tmp_path / "out"
    mine(str(src), "--out", str(out), "--embed-model", "bow", "--embed-cache", str(tmp_path / "cache"),
         "--corpus", str(corpus), "--corpus-from", "file", "-n", "1", "--range-max", "3", "--relative-margin", "none")
    file_texts = set(corpus.read_text().splitlines())
    for row in iter_rows(out, Task.RETRIEVAL):
        assert set(row["negatives"][-1:]) <= file_texts and row["positive_score"] is not None


def test_gpu_index_only_when_faiss_sees_gpus(monkeypatch):
    index = faiss.IndexFlatIP(4)
    calls = []
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 0)
    assert mining_index.place_on_devices(index, mining_index.num_gpus()) is index
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 2)
    monkeypatch.setattr(faiss, "GpuMultipleClonerOptions", lambda: SimpleNamespace(), raising=False)
    monkeypatch.setattr(faiss, "index_cpu_to_all_gpus",
                        lambda idx, co, ngpu: calls.append((idx, co, ngpu)) or "gpu-index", raising=False)
    assert mining_index.place_on_devices(index, mining_index.num_gpus()) == "gpu-index"
    (placed, options, ngpu), = calls
    assert placed is index and ngpu == 2 and options.shard is True and options.useFloat16 is True


def test_api_embedder_against_the_loopback_server(tmp_path, openai_server):
    src = make_input(tmp_path / "in")
    args = [str(src), "--out", str(tmp_path / "out"), "--embedder", "api", "--embed-model", "emb",
            "--embed-base-url", openai_server.base_url, "--api-key", openai_server.api_key,
            "--embed-cache", str(tmp_path / "cache"), "--embed-batch-size", "5", "--relative-margin", "none"]
    mine(*args)
    sent = sum(n for (endpoint, _), n in openai_server.log.received.items() if "embeddings" in endpoint)
    assert sent >= 4  # 12 positives + queries + 1 negative in batches of 5
    rows = list(iter_rows(tmp_path / "out", Task.RETRIEVAL))
    assert all(r["negative_origins"].count("mined") == 4 for r in rows)
    manifest = (tmp_path / "out" / "_manifest.json").read_text()
    assert openai_server.api_key not in manifest
    endpoint = json.loads(manifest)["endpoints"][openai_server.base_url]  # as for every LLM stage
    assert endpoint["requests"] == sent and endpoint["failures"] == 0 and endpoint["latency_ms_p50"] > 0
    mine(*args[:2], str(tmp_path / "again"), *args[3:])  # a new output dir, same cache: no request at all
    assert sum(n for (endpoint, _), n in openai_server.log.received.items() if "embeddings" in endpoint) == sent
    assert "endpoints" not in json.loads((tmp_path / "again" / "_manifest.json").read_text())


def test_mine_and_filter_with_the_api_embedder_close_its_connections(tmp_path, openai_server):
    """Run as a user runs them: no "Unclosed client session" warnings from the embedder's HTTP session at exit."""
    src = make_input(tmp_path / "in")
    api = ["--embedder", "api", "--embed-model", "emb", "--embed-base-url", openai_server.base_url, "--api-key",
           openai_server.api_key]
    for stage, out in (("mine", "mined"), ("filter", "final")):
        result = synth_process(stage, src, "--out", tmp_path / out, *api, "--embed-cache", tmp_path / f"c-{out}")
        assert result.returncode == 0, result.stderr
        assert "Unclosed" not in result.stderr + result.stdout
    assert openai_server.log.total("embeddings") > 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--sampling", "best"], "sampling must be 'top' or 'random'"),
        (["--corpus-from", "file"], "needs at least one --corpus FILE"),
        (["--range-min", "5", "--range-max", "5"], "range_min < range_max"),
        (["--margin", "wide"], "margin must be a number or 'none'"),
        (["--corpus", "missing.jsonl"], "corpus file not found"),
    ],
)
def test_bad_options_are_one_line_errors(tmp_path, extra, message):
    src = make_input(tmp_path / "in")
    result = subprocess.run(
        [*SYNTH, "mine", str(src), "--out", str(tmp_path / "o"),
         "--embed-model", "unused", *extra],
        capture_output=True, text=True,
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_ivf_built_in_shards_on_disk_matches_exact_search(tmp_path, monkeypatch):
    monkeypatch.setattr(mining_index, "ADD_CHUNK", 128)  # four shards merged into on-disk lists
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((500, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    settings = mining_index.IndexSettings(exact_max=100, nlist=8, nprobe=8)
    mining_index.build_index(vectors, settings, tmp_path / "index.faiss")
    assert (tmp_path / "index.ivfdata").exists() and not list(tmp_path.glob(".shard-*"))
    ivf = mining_index.load_index(tmp_path / "index.faiss", nprobe=8)
    flat = faiss.IndexFlatIP(16)
    flat.add(vectors)
    exact_scores, exact_ids = mining_index.search(flat, vectors[:50], 5, 16)
    ivf_scores, ivf_ids = mining_index.search(ivf, vectors[:50], 5, 16)
    np.testing.assert_array_equal(ivf_ids, exact_ids)
    np.testing.assert_allclose(ivf_scores, exact_scores, rtol=1e-5)


def test_an_empty_corpus_file_mines_nothing_but_still_scores(tmp_path, counting):
    src = make_input(tmp_path / "in")
    corpus = tmp_path / "empty.txt"
    corpus.write_text("\n  \n")
    out = tmp_path / "out"
    mine(str(src), "--out", str(out), "--embed-model", "bow", "--embed-cache", str(tmp_path / "cache"),
         "--corpus", str(corpus), "--corpus-from", "file")
    rows = list(iter_rows(out, Task.RETRIEVAL))
    assert all(r["positive_score"] is not None and "mined" not in r["negative_origins"] for r in rows)
    stats = json.loads((out / "_manifest.json").read_text())["totals"]["stats"]
    assert stats["rows_short"] == len(rows) and stats["negatives_mined"] == 0


def test_a_record_whose_origins_do_not_match_its_negatives_is_a_located_record_reject(tmp_path, counting):
    from synth.store import iter_rejects

    rows = [retrieval(q, p) for q, p in PACKAGES[:4]]
    rows[2] = retrieval(*PACKAGES[2], negatives=["Nano is a small text editor."], negative_origins=[])
    src = write_stage(tmp_path / "in", [rows])
    mine(str(src), "--out", str(tmp_path / "out"), "--embed-model", "bow", "--embed-cache", str(tmp_path / "cache"))
    [bad] = iter_rejects(tmp_path / "out")
    assert (bad["rule"], bad["kind"]) == ("negative_origins_mismatch", "record")
    assert bad["location"] == f"retrieval/part-00000.parquet:row 2 id {rows[2]['id']}"


def test_corpus_files_are_read_through_read_rows_gzip_bom_and_a_located_bad_line(tmp_path, counting):
    import gzip

    src = make_input(tmp_path / "in")
    jsonl = tmp_path / "corpus.jsonl.gz"
    lines = [json.dumps({"text": "Kate is a text editor for KDE.", "document_id": "kde"}), "{not json",
             json.dumps({"body": "no text field"}), json.dumps({"text": "Epiphany is a web browser."})]
    jsonl.write_bytes(gzip.compress(("\ufeff" + "\n".join(lines) + "\n").encode("utf-8")))
    text = tmp_path / "corpus.txt.gz"
    text.write_bytes(gzip.compress("\ufeffmpv is a media player.\r\n\n".encode("utf-8")))
    out = tmp_path / "out"
    mine(str(src), "--out", str(out), "--embed-model", "bow", "--embed-cache", str(tmp_path / "cache"),
         "--corpus", str(jsonl), "--corpus", str(text), "--corpus-from", "file", "-n", "1", "--range-max", "3",
         "--relative-margin", "none")
    meta = json.loads((out / "_manifest.json").read_text())["index"]
    assert meta["n_index"] == 3  # the two good JSONL rows and the text line, BOM and CRLF stripped
    assert meta["corpus_rows_skipped"] == 2
    assert meta["corpus_rows_skipped_first"][0].startswith("corpus.jsonl.gz:line 2: malformed JSON")
    assert meta["corpus_rows_skipped_first"][1] == "corpus.jsonl.gz:line 3: no 'text' string"
    negatives = {n for row in iter_rows(out, Task.RETRIEVAL) for n in row["negatives"][-1:]}
    assert negatives <= {"Kate is a text editor for KDE.", "Epiphany is a web browser.", "mpv is a media player."}


def test_api_embedder_estimate_sends_nothing_and_matches_the_run(tmp_path, openai_server):
    src = make_input(tmp_path / "in")
    args = [str(src), "--out", str(tmp_path / "out"), "--embedder", "api", "--embed-model", "emb",
            "--embed-base-url", openai_server.base_url, "--api-key", openai_server.api_key,
            "--embed-cache", str(tmp_path / "cache"), "--embed-batch-size", "5", "--relative-margin", "none",
            "--rpm", "60", "--config", str(prices(tmp_path, "emb", 1000.0))]
    result = runner.invoke(app, ["mine", *args, "--estimate"])
    assert result.exit_code == 0, result.output
    guess = estimated(result.output)
    assert openai_server.log.total() == 0 and not (tmp_path / "out").exists()  # nothing sent, nothing written
    assert guess["estimate_texts"] == 10 + 12 + 1  # distinct queries, positives and the one existing negative
    assert guess["estimate_requests"] == 5  # 23 texts in requests of 5
    assert guess["estimate_cost_usd"] == pytest.approx(guess["estimate_prompt_tokens"] * 1000.0 / 1e6, rel=0.01)
    assert guess["estimate_minutes_at_limits"] == pytest.approx(5 / 60, rel=0.01)
    mine(*args)
    sent = openai_server.log.total("embeddings")
    assert guess["estimate_requests"] == pytest.approx(sent, rel=0.25)
    again = runner.invoke(app, ["mine", *args[:2], str(tmp_path / "again"), *args[3:], "--estimate"])
    assert estimated(again.output)["estimate_requests"] == 0  # everything is in the embedding cache now


def prices(tmp_path: Path, model: str, per_million: float) -> Path:
    path = tmp_path / "prices.toml"
    path.write_text(f'[mine]\nprices = {{ {model} = {{ input = {per_million}, output = 0.0 }} }}\n', encoding="utf-8")
    return path


def test_run_estimate_estimates_mine_with_the_api_embedder(tmp_path, openai_server):
    src = make_input(tmp_path / "in")
    pipeline = tmp_path / "pipeline.toml"
    pipeline.write_text(f"""name = "mined"
[llm]
api_key = "{openai_server.api_key}"
[embedder]
embedder = "api"
embed_model = "emb"
embed_base_url = "{openai_server.base_url}"
embed_cache = "{tmp_path / 'cache'}"
embed_batch_size = 5

[[stage]]
use = "mine"
inputs = ["{src}"]
""", encoding="utf-8")
    result = runner.invoke(app, ["run", str(pipeline), "--out", str(tmp_path / "run"), "--estimate"])
    assert result.exit_code == 0, result.output
    assert estimated(result.output)["estimate_requests"] == 5
    assert openai_server.log.total() == 0 and not (tmp_path / "run").exists()
