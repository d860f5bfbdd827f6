"""The false-negative audit: stratified sampling, Wilson intervals, the estimate and the suggested margin, with a judge
that the loopback server answers from a known table; `synth audit` and `synth filter --audit` as a user runs them."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
from helpers import SYNTH, estimated, synth_process
from typer.testing import CliRunner

from synth.cli import app
from synth.embed.cache import EmbeddingCache
from synth.evaluation.audit import Population, Sampled, bucket_of, draw, estimate, kept_buckets, wilson
from tests.pipeline_fixtures import retrieval, write_stage

runner = CliRunner()
POSITIVE = 0.8
# bucket of the ratio -> (negatives, false ones among them)
TABLE = {0.70: (10, 0), 0.92: (10, 1), 0.97: (10, 5), 1.05: (10, 8)}


def mined_rows() -> list[dict]:
    """One record per negative; a negative whose text says "FALSE" is one the judge calls as good as the positive."""
    rows = []
    for ratio, (count, false) in TABLE.items():
        for i in range(count):
            text = f"candidate {ratio} {i} {'FALSE' if i < false else 'fine'}"
            rows.append(retrieval(f"query {ratio} {i}", f"positive {ratio} {i}", positive_score=POSITIVE,
                                  negatives=[text, f"llm {ratio} {i}"],
                                  negative_scores=[POSITIVE * ratio, 0.1], negative_origins=["mined", "llm"]))
    return rows


def shown(body: dict) -> tuple[str, str]:
    """The first and second passage of an audit request."""
    prompt = body["messages"][-1]["content"]
    return prompt.split("<first>")[1].split("</first>")[0], prompt.split("<second>")[1].split("</second>")[0]


def table_judge(body: dict) -> str:
    """Equal for a negative marked FALSE, else the positive is better, whichever place it is shown in."""
    first, second = shown(body)
    better = "equal" if "FALSE" in first + second else "first" if "positive" in first else "second"
    return json.dumps({"better": better, "reason": "from the table"})


def first_judge(body: dict) -> str:
    """A judge that prefers a position, not a passage: always the first one shown."""
    return json.dumps({"better": "first", "reason": "the first one"})


def llm_flags(server) -> list[str]:
    return ["--base-url", server.base_url, "--api-key", server.api_key, "--model", "test-model"]


def test_buckets_and_margins_share_edges():
    assert [bucket_of(r) for r in (0.5, 0.8, 0.849, 0.9, 0.95, 0.999, 1.0, 1.3)] == [0, 1, 1, 3, 4, 4, 5, 5]
    # a relative margin r keeps ratio < 1 - r: 0.05 keeps the buckets below 0.95, none keeps all six
    assert [kept_buckets(m) for m in (None, 0.0, 0.05, 0.10, 0.20)] == [6, 5, 4, 3, 1]


def test_wilson_interval_matches_hand_computed_values():
    assert wilson(0, 50) == pytest.approx((0.0, 0.071348), abs=1e-6)
    assert wilson(5, 10) == pytest.approx((0.236593, 0.763407), abs=1e-6)
    assert wilson(0, 0) == (0.0, 1.0)


def test_sample_is_stratified_seeded_and_stable_per_bucket():
    population = Population()
    for bucket, size in ((0, 100), (3, 7), (5, 50)):
        population.counts[bucket] = size
        population.members[bucket] = [Sampled("q", "p", f"{bucket}-{i}", 0.8, 0.5, bucket) for i in range(size)]
    first = draw(population, 10, seed=3)
    assert [sum(s.bucket == b for s in first) for b in range(6)] == [10, 0, 0, 7, 0, 10]
    assert [s.negative for s in draw(population, 10, seed=3)] == [s.negative for s in first]
    assert [s.negative for s in draw(population, 10, seed=4)] != [s.negative for s in first]
    population.members[0] = population.members[0][:50]  # another bucket's size leaves bucket 5's sample alone
    population.counts[0] = 50
    assert [s.negative for s in draw(population, 10, seed=3) if s.bucket == 5] == \
        [s.negative for s in first if s.bucket == 5]


def test_estimate_weights_buckets_by_size_and_suggests_the_loosest_margin_under_target():
    population = Population(counts=[1000, 0, 0, 0, 0, 100])
    sample = [Sampled("q", "p", "n", 0.8, 0.1, 0, false_negative=i < 2) for i in range(40)]
    sample += [Sampled("q", "p", "n", 0.8, 0.9, 5, false_negative=i < 20) for i in range(40)]
    result = estimate(population, sample, target=0.05)
    by_margin = {m["relative_margin"]: m for m in result["margins"]}
    assert by_margin[None]["share"] == pytest.approx((1000 * 0.05 + 100 * 0.5) / 1100)
    assert by_margin[0.0]["share"] == pytest.approx(0.05) and by_margin[0.0]["negatives_kept"] == 1000
    assert result["suggested_relative_margin"] == 0.0 and result["target_met"]
    assert estimate(population, sample, target=0.01)["target_met"] is False


def test_synth_audit_reports_the_known_shares_and_a_rerun_asks_nothing(tmp_path, openai_server):
    openai_server.handler = table_judge
    source = write_stage(tmp_path / "mine", [mined_rows()])
    out = tmp_path / "audit"
    args = ["audit", str(source), "--out", str(out), "--per-bucket", "40", *llm_flags(openai_server)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    # mined negatives only (the llm ones are not audited), each read twice: positive first, then negative first
    assert openai_server.log.total("chat") == 80
    report = json.loads((out / "audit.json").read_text())
    shares = {b["bucket"]: (b["negatives"], b["false_negatives"]) for b in report["buckets"] if b["negatives"]}
    assert shares == {"< 0.80": (10, 0), "0.90-0.95": (10, 1), "0.95-1.00": (10, 5), ">= 1.00": (10, 8)}
    assert report["suggested_relative_margin"] == 0.05  # (0 + 1) / 20 = 5%; margin 0 keeps (0 + 1 + 5) / 30
    assert report["position_inconsistency"] == 0.0 and report["judge_reliable"]
    samples = [json.loads(line) for line in (out / "audit_samples.jsonl").read_text().splitlines()]
    assert len(samples) == 40 and all(len(s["verdicts"]) == 2 and not s["flipped"] for s in samples)
    assert {tuple(s["verdicts"]) for s in samples} == {("equal", "equal"), ("positive", "positive")}
    endpoint = report["endpoints"][openai_server.base_url]  # per endpoint, as in a stage's manifest
    assert endpoint["requests"] == 80 and endpoint["failures"] == 0 and endpoint["latency_ms_p99"] > 0
    card = (out / "README.md").read_text()
    assert "## False-negative audit" in card and "**0.05**" in card
    assert re.search(r"\| >= 1\.00 \| 10 \| 10 \| 8 \| 80\.0% \| 49\.0%-94\.3% \| `[^`]*` \| 0 \|", card)
    assert runner.invoke(app, args).exit_code == 0
    assert openai_server.log.total("chat") == 80  # answers come from the journal


def test_a_judge_that_follows_the_order_finds_no_false_negatives_and_is_reported_unreliable(tmp_path,
                                                                                             openai_server):
    openai_server.handler = first_judge
    source = write_stage(tmp_path / "mine", [mined_rows()])
    args = ["audit", str(source), "--per-bucket", "40", *llm_flags(openai_server)]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "audit")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "audit" / "audit.json").read_text())
    # positive first it picks the positive, negative first the negative: every verdict flips, none is counted
    assert report["flipped"] == 40 and report["position_inconsistency"] == 1.0
    assert [b["flipped"] for b in report["buckets"] if b["negatives"]] == [10, 10, 10, 10]
    assert sum(b["false_negatives"] for b in report["buckets"]) == 0
    assert not report["judge_reliable"] and report["suggested_relative_margin"] is None and not report["target_met"]
    card = (tmp_path / "audit" / "README.md").read_text()
    assert "Suggested: none, because the judge is unreliable" in card and "100.0% of the negatives" in card
    assert "judge unreliable" in result.output
    # without the check its empty verdicts would pass every margin: "no margin needed"
    lenient = runner.invoke(app, [*args, "--out", str(tmp_path / "lenient"), "--max-inconsistency", "1"])
    assert lenient.exit_code == 0, lenient.output
    report = json.loads((tmp_path / "lenient" / "audit.json").read_text())
    assert report["target_met"] and report["suggested_relative_margin"] is None


def test_audit_and_filter_judge_estimates_send_nothing_and_match_the_run(tmp_path, openai_server):
    openai_server.handler = lambda body: (json.dumps({"answers": True, "reason": "it answers the query"})
                                          if body["response_format"]["json_schema"]["name"] == "JudgeAnswer"
                                          else table_judge(body))
    source = write_stage(tmp_path / "mine", [mined_rows()])
    audit_args = ["audit", str(source), "--out", str(tmp_path / "audit"), "--per-bucket", "4",
                  *llm_flags(openai_server)]
    filter_args = ["filter", str(source), "--out", str(tmp_path / "final"), "--dedup", "off",
                   "--false-negative-margin", "off", "--judge", "true", *llm_flags(openai_server)]
    guesses = []
    for args in (audit_args, filter_args):
        result = runner.invoke(app, [*args, "--estimate"])
        assert result.exit_code == 0, result.output
        guesses.append(estimated(result.output))
    assert openai_server.log.total("chat") == 0 and not list(tmp_path.glob("[af]*"))  # nothing sent or written
    assert guesses[0]["estimate_requests"] == 32 and guesses[1]["estimate_requests"] == 40  # the audit reads twice
    assert runner.invoke(app, audit_args).exit_code == 0
    assert runner.invoke(app, filter_args).exit_code == 0
    audit_stats = json.loads((tmp_path / "audit" / "audit.json").read_text())["llm"]
    filter_stats = json.loads((tmp_path / "final" / "_manifest.json").read_text())["totals"]["stats"]
    actual = [(audit_stats["requests"], audit_stats["prompt_tokens"]),
              (filter_stats["llm_requests"], filter_stats["llm_prompt_tokens"])]
    for guess, (requests, prompt) in zip(guesses, actual, strict=True):
        assert guess["estimate_requests"] == requests
        assert guess["estimate_prompt_tokens"] == pytest.approx(prompt, rel=0.25)


def test_bad_input_is_a_one_line_error_and_writes_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    source = write_stage(tmp_path / "mine", [mined_rows()])
    for args, message in (([str(tmp_path / "missing")], "not a stage directory"),
                          ([str(tmp_path / "empty")], "no stage parts"),
                          ([str(source), "--target", "1.5"], "target must be in [0, 1)"),
                          ([str(source), "--max-inconsistency", "2"], "max_inconsistency must be in [0, 1]")):
        result = subprocess.run([*SYNTH, "audit", *args, "--out", str(tmp_path / "a")], capture_output=True,
                                text=True)
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "a").exists()


def test_filter_audit_option_puts_the_section_into_the_final_card(tmp_path, openai_server):
    openai_server.handler = table_judge
    source = write_stage(tmp_path / "mine", [mined_rows()])
    out = tmp_path / "final"
    result = runner.invoke(app, ["filter", str(source), "--out", str(out), "--dedup", "off",
                                 "--false-negative-margin", "off", "--audit", "3", *llm_flags(openai_server)])
    assert result.exit_code == 0, result.output
    assert openai_server.log.total("chat") == 24  # 3 in each of the four buckets that hold negatives, read twice
    assert "## False-negative audit" in (out / "README.md").read_text()
    assert json.loads((out / "_audit" / "audit.json").read_text())["judged"] == 12


def test_filter_audit_takes_the_audits_settings_and_a_new_target_redoes_no_filtering(tmp_path, openai_server):
    openai_server.handler = table_judge
    source = write_stage(tmp_path / "mine", [mined_rows()])
    out = tmp_path / "final"
    flags = [str(source), "--out", str(out), "--dedup", "off", "--false-negative-margin", "off", "--audit", "3",
             "--audit-seed", "7", *llm_flags(openai_server)]
    result = runner.invoke(app, ["filter", *flags, "--audit-target", "0.5", "--audit-max-inconsistency", "0.9"])
    assert result.exit_code == 0, result.output
    settings = json.loads((out / "_audit" / "audit.json").read_text())["settings"]
    assert (settings["target"], settings["max_inconsistency"], settings["audit_seed"]) == (0.5, 0.9, 7)
    sent = openai_server.log.total("chat")
    again = runner.invoke(app, ["filter", *flags, "--audit-target", "0.01"])
    assert again.exit_code == 0, again.output
    assert "1 of 1 parts already finished: skipped" in again.output  # the audit's settings decide no kept row
    settings = json.loads((out / "_audit" / "audit.json").read_text())["settings"]
    assert (settings["target"], settings["max_inconsistency"]) == (0.01, 0.2)
    assert openai_server.log.total("chat") == sent  # the same sample: every verdict from the journal
    kept = sorted((out / "retrieval").iterdir())
    bad = synth_process("filter", *flags, "--audit-max-inconsistency", "1.5")
    assert bad.returncode != 0 and "max_inconsistency must be in [0, 1], got 1.5" in bad.stderr
    assert sorted((out / "retrieval").iterdir()) == kept


def test_audit_is_a_pipeline_stage_and_filter_audit_needs_the_llm(tmp_path):
    from synth.pipeline.plan import load_plan

    pipeline = tmp_path / "pipeline.toml"
    pipeline.write_text('name = "p"\n[[stage]]\nuse = "filter"\ninputs = ["mine"]\naudit = 5\n'
                        '[[stage]]\nuse = "audit"\ninputs = ["mine"]\nper_bucket = 7\ntarget = 0.1\n')
    filter_stage, audit_stage = load_plan(pipeline, tmp_path / "run").stages
    assert filter_stage.options["audit"] == 5 and filter_stage.needs_llm()
    assert audit_stage.options["per_bucket"] == 7 and audit_stage.options["target"] == 0.1
    assert audit_stage.options["inputs"] == [str(tmp_path / "mine")] and audit_stage.needs_llm()


def test_filter_estimate_counts_its_api_embedder_sends_nothing_and_matches_the_run(tmp_path, make_openai_server):
    embed = make_openai_server()
    parts = [[retrieval(f"query {p}-{i} about topic {i}", f"positive {p}-{i} on topic {i}",
                        negatives=[f"negative {p}-{i} off topic"], negative_origins=["mined"]) for i in range(300)]
             for p in range(2)]  # no scores: the filter embeds every text to score the pairs
    source = write_stage(tmp_path / "in", parts)
    config, cache, out = tmp_path / "synth.toml", tmp_path / "cache", tmp_path / "final"
    config.write_text('[filter]\nembed_batch_size = 16\nprices = { emb = { input = 1000.0, output = 0.0 } }\n',
                      encoding="utf-8")
    args = ["filter", str(source), "--out", str(out), "--embedder", "api", "--embed-model", "emb",
            "--embed-base-url", embed.base_url, "--api-key", embed.api_key, "--embed-cache", str(cache),
            "--dedup", "embedding", "--dedup-on", "pair", "--config", str(config)]
    result = runner.invoke(app, [*args, "--estimate"])
    assert result.exit_code == 0, result.output
    assert embed.log.total() == 0 and not out.exists() and not cache.exists()  # nothing sent or written
    guess = estimated(result.output)
    assert guess["estimate_rows_sampled"] == 200 and guess["estimate_requests"] == 0  # no judge
    # Per part 300 queries in requests of 16, then 300 positives and 300 negatives; dedup's texts are embedded
    # already. Sampled 100 rows a part, scaled to 300.
    assert guess["estimate_embed_texts"] == 2 * 900 and guess["estimate_embed_requests"] == 2 * (19 + 38)
    assert guess["estimate_cost_usd"] == guess["estimate_embed_cost_usd"] > 0  # the embedder's is the whole bill
    assert runner.invoke(app, args).exit_code == 0
    sent = json.loads((out / "_manifest.json").read_text())["endpoints"][embed.base_url]
    assert guess["estimate_embed_requests"] == sent["requests"] == embed.log.total("embeddings")
    assert guess["estimate_embed_texts"] == len(EmbeddingCache(cache, f"emb@{embed.base_url}"))
    assert guess["estimate_embed_cost_usd"] == pytest.approx(sent["cost_usd"], rel=0.25)
    local = runner.invoke(app, ["filter", str(source), "--out", str(tmp_path / "local"), "--estimate"])
    assert local.exit_code == 0 and "estimate_embed" not in local.output, local.output  # a local model sends nothing


def test_status_shows_the_endpoints_of_a_filters_audit(tmp_path, openai_server, monkeypatch):
    openai_server.handler = table_judge
    source = write_stage(tmp_path / "mine", [mined_rows()])
    pipeline = tmp_path / "pipeline.toml"
    pipeline.write_text(f"""name = "audited"
[llm]
base_url = "{openai_server.base_url}"
api_key = "{openai_server.api_key}"
model = "test-model"
[[stage]]
use = "filter"
inputs = ["{source}"]
dedup = "off"
false_negative_margin = "off"
audit = 3
""", encoding="utf-8")
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["run", str(pipeline), "--out", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert openai_server.log.total("chat") == 24  # the audit's: the filter itself asks no judge here
    monkeypatch.setenv("COLUMNS", "250")  # URLs whole on one line
    status = runner.invoke(app, ["status", str(run_dir)])
    assert status.exit_code == 0, status.output
    (row,) = [line for line in status.output.splitlines() if "filter (audit)" in line]
    assert openai_server.base_url in row and re.search(r"│\s*24\s*│", row), status.output
