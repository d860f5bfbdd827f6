"""`synth mine` on documents: passages are candidates and pass through, siblings are never negatives, round trip.

Real Parquet in and out, the shipped MiniLM model, real FAISS.
"""

from __future__ import annotations

import json

from synth.schema import Task
from synth.store import iter_rejects, iter_rows, list_parts, read_part
from tests.pipeline_fixtures import passage, retrieval, write_stage
from tests.test_mine import PACKAGES, mine

VIM_CHUNKS = [
    "Vim is a highly configurable text editor built to make creating and changing any kind of text efficient.",
    "Vim text editor configuration: the vimrc file sets options, key mappings and plugins of the Vim editor.",
    "Vim text editor modes: normal mode moves and edits, insert mode types text, visual mode selects text in Vim.",
]
OTHERS = [p for q, p in PACKAGES if q != "text editor"]
QUERY = "how do I configure the vim text editor"


def stats_of(out) -> dict:
    return json.loads((out / "_manifest.json").read_text())["totals"]["stats"]


def test_siblings_of_the_query_document_are_never_negatives_and_passages_pass_through(tmp_path):
    passages = [passage(t, "vim-guide", i) for i, t in enumerate(VIM_CHUNKS)]
    passages += [passage(t, f"pkg-{i}") for i, t in enumerate(OTHERS)]
    generated = retrieval(QUERY, VIM_CHUNKS[1], origin="querygen", document_id="vim-guide")
    plain = retrieval(QUERY + "?", VIM_CHUNKS[1])  # no document: its siblings are fair candidates
    src = write_stage(tmp_path / "in", [[generated, plain], passages])
    out = tmp_path / "out"
    mine(str(src), "--out", str(out), "--embed-cache", str(tmp_path / "cache"), "--query-format", "{query}",
         "-n", "2", "--sampling", "top", "--relative-margin", "none", "--dup-threshold", "none")
    rows = {r["query"]: r for r in iter_rows(out, Task.RETRIEVAL)}
    siblings = {VIM_CHUNKS[0], VIM_CHUNKS[2]}
    # The siblings outscore every other passage: the record of no document gets exactly them.
    assert set(rows[plain["query"]]["negatives"]) == siblings
    assert not set(rows[QUERY]["negatives"]) & siblings and len(rows[QUERY]["negatives"]) == 2
    assert set(rows[QUERY]["negatives"]) <= set(OTHERS)
    assert stats_of(out)["removed_same_document"] == 2
    [part] = [p for p in list_parts(out) if p.task == Task.PASSAGE]
    assert read_part(part).to_pylist() == passages  # passages are candidates, not mined: unchanged


def test_a_generated_query_whose_positive_is_unrelated_is_dropped_with_its_rank(tmp_path):
    rows = [retrieval(q, p) for q, p in PACKAGES]
    good = retrieval("web browser from Mozilla", PACKAGES[2][1], origin="querygen")
    bad = retrieval("a fast image viewer for X", PACKAGES[11][1], origin="querygen")  # positive: PostgreSQL
    unchecked = retrieval("a fast image viewer for X11", PACKAGES[11][1])  # origin source: ranked, never dropped
    src = write_stage(tmp_path / "in", [[*rows, good, bad, unchecked]])
    out = tmp_path / "out"
    mine(str(src), "--out", str(out), "--embed-cache", str(tmp_path / "cache"), "--query-format", "{query}",
         "--roundtrip-k", "2")
    kept = {r["id"]: r for r in iter_rows(out, Task.RETRIEVAL)}
    assert bad["id"] not in kept and kept[good["id"]]["roundtrip_rank"] == 1
    assert kept[unchecked["id"]]["roundtrip_rank"] > 2
    assert all(isinstance(r["roundtrip_rank"], int) for r in kept.values())
    [dropped] = iter_rejects(out)
    assert (dropped["rule"], dropped["kind"]) == ("roundtrip", "record")
    assert dropped["location"] == f"retrieval/part-00000.parquet:row {len(rows) + 1} id {bad['id']}"
    rank = int(dropped["reason"].split()[2])
    assert rank > 2 and dropped["reason"] == f"positive ranked {rank} > k=2"
    assert stats_of(out)["roundtrip_dropped"] == 1 and stats_of(out)["roundtrip_checked"] == 2
