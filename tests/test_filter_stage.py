"""`synth filter` run the way a user runs it, on hand-made stage directories with real Parquet."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
from helpers import SYNTH
from typer.testing import CliRunner

from synth.cli import app
from synth.store import iter_rejects, iter_rows
from tests.pipeline_fixtures import cls, retrieval, sts, write_stage

runner = CliRunner()


def run_filter(*args: str) -> None:
    result = runner.invoke(app, ["filter", *args])
    assert result.exit_code == 0, result.output


def scored(query: str, positive: str, score: float, negatives: list[tuple[str, float, str]] = (), **fields):
    return retrieval(query, positive, positive_score=score, negatives=[n for n, _, _ in negatives],
                     negative_scores=[s for _, s, _ in negatives], negative_origins=[o for _, _, o in negatives],
                     **fields)


def rejects_by_rule(directory: Path) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for row in iter_rejects(directory):
        found.setdefault(row["rule"], []).append(row)
    return found


def test_score_rules_apply_per_origin_and_drop_bad_negatives(tmp_path):
    rows = [
        scored("what is apt", "apt installs Debian packages", 0.5),  # source: threshold off by default
        scored("what is dpkg", "dpkg is the low-level package tool", 0.5, origin="querygen"),  # synthetic, < 0.7
        scored("what is aptitude", "aptitude is a text UI for apt", 0.8, origin="paraphrase", negatives=[
            ("a false negative", 0.95, "mined"),  # > 0.8 + 0.1
            ("an LLM negative too close", 0.82, "llm"),  # not below the positive (relative margin 0)
            ("a fine LLM negative", 0.70, "llm"),
            ("a fine mined negative", 0.85, "mined"),  # mined negatives only face the +0.1 rule
        ]),
    ]
    src = write_stage(tmp_path / "in", [rows])
    run_filter(str(src), "--out", str(tmp_path / "final"), "--dedup", "off")
    kept = list(iter_rows(tmp_path / "final"))
    assert [r["query"] for r in kept] == ["what is apt", "what is aptitude"]
    assert kept[1]["negatives"] == ["a fine LLM negative", "a fine mined negative"]
    assert kept[1]["negative_scores"] == [0.70, 0.85]
    assert kept[1]["negative_origins"] == ["llm", "mined"]
    rules = rejects_by_rule(tmp_path / "final")
    assert {k: len(v) for k, v in rules.items()} == {"min_score": 1, "false_negative": 1, "llm_negative_margin": 1}
    assert json.loads(rules["false_negative"][0]["record"])["negative"] == "a false negative"
    manifest = json.loads((tmp_path / "final" / "_manifest.json").read_text())
    assert manifest["totals"]["rejects_by_rule"] == {"min_score": 1, "false_negative": 1, "llm_negative_margin": 1}
    distributions = manifest["score_distributions"]
    assert distributions["positive"]["before"]["count"] == 3 and distributions["positive"]["after"]["count"] == 2
    assert distributions["negative"]["before"]["count"] == 4 and distributions["negative"]["after"]["count"] == 2


def test_percentile_threshold_uses_the_origins_own_scores(tmp_path):
    rows = [scored(f"query number {i}", f"passage number {i}", round(0.1 * i, 2), origin="querygen") for i in range(10)]
    src = write_stage(tmp_path / "in", [rows])
    run_filter(str(src), "--out", str(tmp_path / "final"), "--min-score", "querygen=p50", "--dedup", "off")
    kept = sorted(r["positive_score"] for r in iter_rows(tmp_path / "final"))
    assert kept == [0.5, 0.6, 0.7, 0.8, 0.9]  # median of 0.0 .. 0.9 is 0.45
    manifest = json.loads((tmp_path / "final" / "_manifest.json").read_text())
    assert manifest["thresholds"] == {"querygen": 0.45}


PACKAGE_FORMAT = "Debian binary packages are ar archives holding a control tarball and a data tarball."


def test_duplicates_are_found_across_parts(tmp_path):
    part_a = [scored("How do I upgrade Debian?", "Run apt full-upgrade after editing sources.", 0.9),
              scored("What is a package?", "A package bundles files.", 0.9)]
    part_b = [scored("how do I upgrade debian", "Another answer about upgrades.", 0.9),  # same query
              scored("What is a package", "A package bundles files", 0.9),  # same pair
              scored("What is a Debian package file format?", PACKAGE_FORMAT, 0.9),
              scored("What is the Debian package file format?", PACKAGE_FORMAT, 0.9)]  # near: pair Jaccard 0.9
    part_c = [sts("a cat sits", "a cat is sitting", 0.9), sts("A cat sits.", "a cat is sitting", 0.8),
              sts("a cat is sitting", "a cat sits", 0.9)]  # the reverse direction is not a duplicate
    part_d = [cls("great film", "pos", positive="loved it"), cls("Great film!", "neg", positive="awful")]
    src = write_stage(tmp_path / "in", [part_a, part_b, part_c, part_d])
    run_filter(str(src), "--out", str(tmp_path / "final"))
    rules = rejects_by_rule(tmp_path / "final")
    dropped = sorted((json.loads(r["record"]).get("query") or json.loads(r["record"]).get("text")
                      or json.loads(r["record"])["text_a"]) for r in rules["duplicate"])
    assert dropped == ["A cat sits.", "Great film!", "What is a package", "how do I upgrade debian"]
    near = [json.loads(r["record"])["query"] for r in rules["near_duplicate"]]
    assert near == ["What is the Debian package file format?"]
    reasons = {json.loads(r["record"]).get("query"): r["reason"] for r in rules["duplicate"]}
    assert reasons["What is a package"].startswith("same query as retrieval/part-00000.parquet:row 1 id ")
    assert sum(1 for _ in iter_rows(tmp_path / "final")) == 11 - 5


def test_length_and_language_rules(tmp_path):
    rows = [scored("短查询", "这是一个中文段落。", 0.9, lang="zh"),
            scored("an English query", "an English passage", 0.9, lang="zh"),
            scored("long " * 300, "passage", 0.9),
            scored("ok query", "ok passage", 0.9,
                   negatives=[("负面例子", 0.1, "mined"), ("long " * 2000, 0.1, "mined")])]
    src = write_stage(tmp_path / "in", [rows])
    run_filter(str(src), "--out", str(tmp_path / "final"), "--dedup", "off")
    rules = {k: len(v) for k, v in rejects_by_rule(tmp_path / "final").items()}
    assert rules == {"lang_mismatch": 2, "too_long": 2}
    kept = list(iter_rows(tmp_path / "final"))
    assert [r["query"] for r in kept] == ["短查询", "ok query"] and kept[1]["negatives"] == []
    run_filter(str(src), "--out", str(tmp_path / "loose"), "--dedup", "off", "--check-lang", "false",
               "--max-query-tokens", "1000", "--max-passage-tokens", "5000")
    assert sum(1 for _ in iter_rows(tmp_path / "loose")) == 4


def test_missing_scores_are_computed_with_the_embedder(tmp_path):
    rows = [retrieval("How do I list installed packages?", "dpkg -l lists every installed package.",
                      negatives=["Bananas are rich in potassium."], negative_origins=["mined"], origin="querygen"),
            retrieval("How do I list installed packages on Debian?", "The weather is sunny today.", origin="querygen")]
    src = write_stage(tmp_path / "in", [rows])
    run_filter(str(src), "--out", str(tmp_path / "final"), "--embed-cache", str(tmp_path / "cache"),
               "--min-score", "0.3")
    kept = list(iter_rows(tmp_path / "final"))
    assert [r["query"] for r in kept] == ["How do I list installed packages?"]
    assert kept[0]["positive_score"] > 0.3 and kept[0]["negative_scores"][0] < kept[0]["positive_score"]
    assert [r["rule"] for r in iter_rejects(tmp_path / "final")] == ["min_score"]


def test_rerun_skips_finished_parts_and_card_matches_data(tmp_path):
    parts = [[scored(f"query {i} about topic {i * 7}", f"passage {i}", 0.9, source=f"src{i % 2}") for i in range(6)],
             [sts("one", "two", 0.5, lang="en"), sts("three", "four", 1.0)],
             [cls("good movie", "pos", negatives=["bad movie"]), cls("bad movie", "neg")]]
    src = write_stage(tmp_path / "in", parts)
    out = tmp_path / "final"
    run_filter(str(src), "--out", str(out))
    before = {p: p.read_bytes() for p in sorted(out.rglob("*.parquet"))}
    result = runner.invoke(app, ["filter", str(src), "--out", str(out)])
    assert "3 of 3 parts already finished" in result.output
    assert before == {p: p.read_bytes() for p in sorted(out.rglob("*.parquet"))}
    card = (out / "README.md").read_text()
    counts = {t: pq.read_table(out / t).num_rows for t in ("retrieval", "sts", "cls")}
    for task, count in counts.items():
        assert f"| {task} | {count:,} |" in card
    for source in ("src0", "src1"):
        expected = sum(1 for r in iter_rows(out) if r["source"] == source)
        assert f"| retrieval | {source} | {expected:,} |" in card
    assert (out / "_card" / "positive_scores.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert re.search(r"\| positive \| after \| 6 \|", card)


def test_bad_options_are_one_line_errors(tmp_path):
    src = write_stage(tmp_path / "in", [[scored("q", "p", 0.9)]])
    synth = SYNTH
    result = subprocess.run([*synth, "filter", str(src), "--out", str(tmp_path / "o"), "--min-score", "p300"],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: option min_score:")
    assert not (tmp_path / "o").exists()
    result = subprocess.run([*synth, "filter", str(tmp_path / "missing"), "--out", str(tmp_path / "o")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "input not found" in result.stderr


def test_embedding_dedup_uses_the_embedder(tmp_path):
    rows = [scored("How do I boil an egg?", "Put it in boiling water for six minutes.", 0.9),
            scored("How can I boil an egg?", "Put it in boiling water for six minutes.", 0.9),
            scored("What is the capital of France?", "Paris is the capital of France.", 0.9)]
    src = write_stage(tmp_path / "in", [rows])
    run_filter(str(src), "--out", str(tmp_path / "final"), "--dedup", "embedding", "--dedup-on", "pair",
               "--embedding-dup-threshold", "0.9", "--embed-cache", str(tmp_path / "cache"))
    rules = rejects_by_rule(tmp_path / "final")
    assert [json.loads(r["record"])["query"] for r in rules["near_duplicate"]] == ["How can I boil an egg?"]
    assert "pair embedding similarity" in rules["near_duplicate"][0]["reason"]


def test_llm_judge_drops_what_it_rejects_and_never_asks_twice(tmp_path, openai_server):
    def judge(body):
        prompt = body["messages"][-1]["content"]
        answers = "weather" not in prompt
        return json.dumps({"answers": answers, "reason": "on topic" if answers else "talks about the weather"})

    openai_server.handler = judge
    rows = [scored("How do I list installed packages?", "dpkg -l lists every installed package.", 0.9),
            scored("How do I remove a package?", "The weather is sunny today.", 0.9)]
    src = write_stage(tmp_path / "in", [rows])
    llm = ["--base-url", openai_server.base_url, "--api-key", openai_server.api_key, "--model", "test-model"]
    run_filter(str(src), "--out", str(tmp_path / "final"), "--judge", "true", *llm)
    assert [r["query"] for r in iter_rows(tmp_path / "final")] == ["How do I list installed packages?"]
    rules = rejects_by_rule(tmp_path / "final")
    assert rules["judge"][0]["reason"] == "judge: talks about the weather"
    sent = openai_server.log.total("chat")
    assert sent == 2
    manifest = (tmp_path / "final" / "_manifest.json").read_text()
    assert openai_server.api_key not in manifest
    assert json.loads(manifest)["totals"]["stats"]["llm_requests"] == 2
    assert json.loads(manifest)["endpoints"][openai_server.base_url]["requests"] == 2  # the judge's endpoint
    (tmp_path / "final" / "retrieval" / "part-00000.parquet").unlink()  # force the part to be redone
    run_filter(str(src), "--out", str(tmp_path / "final"), "--judge", "true", *llm)
    assert openai_server.log.total("chat") == sent  # answers come from the journal


def test_rejects_say_what_they_dropped_in_a_column_and_the_card_counts_by_it(tmp_path):
    rows = [scored("what is apt", "apt installs Debian packages", 0.5, origin="querygen"),  # min_score drops it
            scored("what is aptitude", "aptitude is a text UI for apt", 0.8, origin="paraphrase", negatives=[
                ("a fine negative", 0.3, "mined"), ("a false negative", 0.95, "mined")])]
    src = write_stage(tmp_path / "in", [rows])
    out = tmp_path / "final"
    run_filter(str(src), "--out", str(out), "--dedup", "off")
    found = {r["rule"]: r for r in iter_rejects(out)}
    assert (found["min_score"]["kind"], found["false_negative"]["kind"]) == ("record", "negative")
    assert found["min_score"]["location"] == f"retrieval/part-00000.parquet:row 0 id {rows[0]['id']}"
    assert found["false_negative"]["location"] == f"retrieval/part-00000.parquet:row 1 id {rows[1]['id']} negative 1"
    card = (out / "README.md").read_text()
    assert "| false_negative | 0 | 1 |" in card and "| min_score | 1 | 0 |" in card


def test_the_card_reads_kinds_not_locations_and_old_rejects_without_kind_are_records(tmp_path):
    import pyarrow as pa

    from synth.card import count_drops
    from synth.store import location, reject, write_rejects

    out = write_stage(tmp_path / "final", [[scored("q", "p", 0.9)]])
    where = location("retrieval/part-00000.parquet", 0, "abc")  # no " negative " anywhere in it
    write_rejects(out, "retrieval", "part-00000", [reject("filter", where, "too_long", "why", {}, kind="negative")])
    old = {"stage": ["filter"], "location": ["part-00001.parquet row 0 id x"], "rule": ["judge"], "reason": ["r"],
           "record": ["{}"]}  # the columns before rejects had a kind
    pq.write_table(pa.table(old), out / "_rejects" / "retrieval" / "part-00001.parquet")
    assert [r["kind"] for r in iter_rejects(out)] == ["negative", "record"]
    drops = count_drops(out)
    assert (dict(drops["negative"]), dict(drops["record"])) == ({"too_long": 1}, {"judge": 1})


def test_negatives_without_a_recorded_origin_have_one_guess(tmp_path):
    from synth.schema import UNKNOWN_NEGATIVE_ORIGIN, negative_origins

    row = retrieval("what is apt", "apt installs Debian packages", positive_score=0.8,
                    negatives=["a false negative", "fine"], negative_scores=[0.95, 0.1])
    assert negative_origins(row) == [UNKNOWN_NEGATIVE_ORIGIN] * 2 == ["source", "source"]
    assert negative_origins({**row, "negative_origins": ["llm"]}) == ["llm", "source"]
    run_filter(str(write_stage(tmp_path / "in", [[row]])), "--out", str(tmp_path / "final"), "--dedup", "off")
    [dropped] = iter_rejects(tmp_path / "final")
    assert json.loads(dropped["record"])["origin"] == UNKNOWN_NEGATIVE_ORIGIN
