"""The four synthesis commands end to end, through the CLI, against the loopback OpenAI-compatible server."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from helpers import SAMPLES, synth_process
from synthesis_fixtures import RETRIEVAL_ROWS, FakeModel, write_input
from typer.testing import CliRunner

from synth.cli import app
from synth.llm import LLMSettings
from synth.prompts import PromptLibrary
from synth.schema import Task
from synth.store import iter_rejects, iter_rows
from synth.synthesis.paraphrase import PARAPHRASE, ParaphraseStage

runner = CliRunner()


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """data_samples/ ingested with `synth ingest` (English and Chinese retrieval, STS and CLS rows)."""
    root = tmp_path_factory.mktemp("samples")
    made = []
    for name, shape, extra in (("qa.jsonl", "qa", []), ("cls.jsonl", "cls", []),
                               ("sts_score.tsv", "sts-score", ["--config", str(SAMPLES / "sts_score.toml")])):
        out = root / shape
        result = runner.invoke(app, ["ingest", str(SAMPLES / name), "--shape", shape, "--out", str(out), *extra])
        assert result.exit_code == 0, result.output
        made.append(str(out))
    return made


@pytest.fixture
def fake(make_openai_server: Any) -> tuple[Any, FakeModel]:
    model = FakeModel()
    return make_openai_server(handler=model), model


def synth(command: str, inputs: list[str], out: Path, server: Any, *extra: str) -> Any:
    args = [command, *inputs, "--out", str(out), "--base-url", server.base_url, "--api-key", server.api_key,
            "--model", server.model, "--max-attempts", "2", *extra]
    return runner.invoke(app, args)


def stage_process(command: str, inputs: list[str], out: Path, server: Any, *extra: str) -> subprocess.CompletedProcess:
    """The stage as a user runs it against the server (errors become one line on stderr and an exit code)."""
    return synth_process(command, *inputs, "--out", out, "--base-url", server.base_url, "--api-key", server.api_key,
                         *extra)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def manifest(out: Path) -> dict[str, Any]:
    return json.loads((out / "_manifest.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize(("command", "origin", "tasks"), [
    ("paraphrase", "paraphrase", {"retrieval", "sts", "cls"}),
    ("augment", "augment", {"retrieval", "cls"}),
    ("querygen", "querygen", {"retrieval"}),
])
def test_generation_stage_on_the_samples(samples, fake, tmp_path, command, origin, tasks):
    server, _ = fake
    out = tmp_path / command
    result = synth(command, samples, out, server, "-n", "2")
    assert result.exit_code == 0, result.output
    rows = list(iter_rows(out))
    sources = [r for r in rows if r["origin"] == "source"]
    made = [r for r in rows if r["origin"] == origin]
    assert len(sources) == sum(len(list(iter_rows(Path(s)))) for s in samples)  # inputs kept
    assert {r["task"] for r in made} == tasks
    by_id = {r["id"]: r for r in sources}
    for row in made:
        meta = json.loads(row["meta"])
        parent = by_id[row["parent_id"]]
        assert meta["template_sha"] == PromptLibrary().load(meta["template"]).sha
        assert meta["template"].endswith(f".{parent['lang']}.jinja")
    assert {json.loads(r["meta"])["template"].split(".")[1] for r in made} == {"en", "zh"}
    totals = manifest(out)["totals"]
    assert totals["stats"]["kept"] > 0 and totals["stats"]["generated"] >= totals["stats"]["kept"]
    assert "test-key" not in (out / "_manifest.json").read_text()
    assert "generated" in result.output and "kept" in result.output


def test_paraphrase_outputs_keep_what_still_holds(samples, fake, tmp_path):
    server, _ = fake
    out = tmp_path / "p"
    assert synth("paraphrase", samples, out, server, "-n", "1", "--drop-source").exit_code == 0
    rows = list(iter_rows(out))
    assert rows and all(r["origin"] == "paraphrase" for r in rows)
    parents = {r["id"]: r for s in samples for r in iter_rows(Path(s))}
    for row in rows:
        parent = parents[row["parent_id"]]
        if row["task"] == "sts":
            assert (row["score"], row["label"]) == (parent["score"], parent["label"])
            assert row["text_a"] != parent["text_a"]
        if row["task"] == "cls":
            assert row["label"] == parent["label"]


def test_llm_negatives_are_appended_with_their_kind(samples, fake, tmp_path):
    server, _ = fake
    out = tmp_path / "n"
    result = synth("llm-negatives", samples, out, server, "-n", "3")
    assert result.exit_code == 0, result.output
    retrieval = list(iter_rows(out, Task.RETRIEVAL))
    assert len(retrieval) == len(list(iter_rows(Path(samples[0]))))
    for row in retrieval:
        meta = json.loads(row["meta"])
        assert row["origin"] == "source" and row["negative_origins"] == ["llm"] * 3
        assert len(row["negatives"]) == 3 and row["positive"] not in row["negatives"]
        assert [k["kind"] for k in meta["llm_negatives"]] == ["deviates_meaning", "adds_irrelevant",
                                                              "different_aspect"]
    assert manifest(out)["totals"]["stats"]["records_not_applicable"] > 0  # STS and CLS pass through


def test_copies_are_rejected_with_a_reason_and_regeneration_is_bounded(samples, make_openai_server, tmp_path):
    model = FakeModel(mode="copy")
    server = make_openai_server(handler=model)
    out = tmp_path / "copy"
    result = synth("paraphrase", samples[:1], out, server, "-n", "2", "--max-tries", "3")
    assert result.exit_code == 0, result.output
    records = len(list(iter_rows(Path(samples[0]))))
    assert len(model.bodies) == 3 * records  # every record asked exactly max_tries times
    rejects = list(iter_rejects(out))
    assert {r["rule"] for r in rejects} == {"identical_to_source"}
    stats = manifest(out)["totals"]["stats"]
    assert stats["tries_exhausted"] == records and stats["kept"] == 0
    assert len(list(iter_rows(out))) == records  # the sources, nothing else


def test_llm_negatives_after_a_rescored_mine_export_no_misaligned_teacher_margins(fake, tmp_path):
    """A rescored mine gives each mined negative a teacher score; the appended LLM negatives have none, so the
    export must not pair the old margins with the new negatives."""
    server, _ = fake
    mined = [{**r, "negatives": [f"mined {i}"], "negative_origins": ["mined"], "positive_score": 0.8,
              "negative_scores": [0.4], "positive_teacher_score": 5.0, "negative_teacher_scores": [1.0]}
             for i, r in enumerate(RETRIEVAL_ROWS)]
    write_input(tmp_path / "mine", Task.RETRIEVAL, mined)
    assert synth("llm-negatives", [str(tmp_path / "mine")], tmp_path / "n", server, "-n", "2").exit_code == 0
    rows = list(iter_rows(tmp_path / "n", Task.RETRIEVAL))
    assert [len(r["negatives"]) for r in rows] == [3] * len(mined)
    assert all(r["negative_scores"] is None and r["negative_teacher_scores"] is None for r in rows)
    exported = runner.invoke(app, ["export", str(tmp_path / "n"), "--out", str(tmp_path / "e"), "--num-negatives", "3"])
    assert exported.exit_code == 0, exported.output
    table = pq.read_table(next((tmp_path / "e" / "sentence-transformers" / "retrieval").glob("train-*.parquet")))
    assert table.num_rows == len(mined)
    assert table.column_names == ["anchor", "positive", "negative_1", "negative_2", "negative_3"]


@pytest.mark.parametrize(("command", "kind"), [("paraphrase", "record"), ("llm-negatives", "negative")])
def test_rejected_outputs_say_what_they_would_have_been_and_name_their_parent_row(
    samples, make_openai_server, tmp_path, command, kind
):
    server = make_openai_server(handler=FakeModel(mode="copy"))
    out = tmp_path / "copy"
    assert synth(command, samples[:1], out, server, "-n", "1", "--max-tries", "1").exit_code == 0
    parents = list(iter_rows(Path(samples[0])))
    rejects = list(iter_rejects(out))
    assert len(rejects) == len(parents) and {r["kind"] for r in rejects} == {kind}
    assert [r["location"] for r in rejects] == [
        f"retrieval/part-00000.parquet:row {i} id {row['id']}" for i, row in enumerate(parents)]


def test_hostile_corpus_text_reaches_the_server_verbatim(fake, tmp_path):
    server, model = fake
    hostile = ('What is {{ 7*7 }} and {% raw %}? He said "yes" & \'no\'\nnext line </query> 混合 текст 🙂 '
               + "long " * 3000)
    passage = "{{ config.items() }} {% for x in range(3) %}loop{% endfor %} \"quoted\"\n\n末尾。 Ωμέγα."
    write_input(tmp_path / "in", Task.RETRIEVAL, [{**RETRIEVAL_ROWS[0], "query": hostile, "positive": passage}])
    result = synth("llm-negatives", [str(tmp_path / "in")], tmp_path / "out", server, "-n", "1")
    assert result.exit_code == 0, result.output
    prompt = model.prompts()[0]
    assert hostile.strip() in prompt and passage in prompt
    assert "49" not in prompt and "looploop" not in prompt


def test_custom_prompt_folder_overrides_a_template(samples, fake, tmp_path):
    server, model = fake
    folder = tmp_path / "prompts"
    folder.mkdir()
    text = (PromptLibrary().load("llm_negatives.en.jinja").text
            .replace("You write hard negatives", "CUSTOM-MARKER: you write hard negatives"))
    (folder / "llm_negatives.en.jinja").write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    result = synth("llm-negatives", samples[:1], out, server, "-n", "1", "--prompts", str(folder))
    assert result.exit_code == 0, result.output
    marked = [p for p in model.prompts() if "CUSTOM-MARKER" in p]
    rows = list(iter_rows(out, Task.RETRIEVAL))
    english = [r for r in rows if r["lang"] == "en"]
    assert len(marked) == len(english) and len(marked) < len(rows)  # Chinese rows keep the built-in zh template
    shas = {json.loads(r["meta"])["llm_negatives"][0]["template_sha"] for r in english}
    assert shas == {PromptLibrary(folder).load("llm_negatives.en.jinja").sha}


@pytest.mark.parametrize("template", ["{# output: paraphrase #}\n{{ fields ", "{# output: paraphrase #}\n{{ nope }}"])
def test_a_broken_template_fails_before_any_request(samples, fake, tmp_path, template):
    server, model = fake
    folder = tmp_path / "prompts"
    folder.mkdir()
    (folder / "paraphrase.zh.jinja").write_text(template, encoding="utf-8")
    result = stage_process("paraphrase", samples, tmp_path / "out", server, "--prompts", str(folder))
    assert "paraphrase.zh.jinja" in one_line_error(result)
    assert server.log.total() == 0 and not model.bodies
    assert not (tmp_path / "out").exists()


def test_resume_skips_done_parts_and_never_resends_an_answered_request(samples, fake, tmp_path):
    server, _ = fake
    out = tmp_path / "out"
    assert synth("augment", samples, out, server, "-n", "2").exit_code == 0
    sent = server.log.total("chat")
    assert manifest(out)["totals"]["stats"]["llm_requests"] == sent  # every part's usage, summed
    first = [r["id"] for r in iter_rows(out)]
    again = synth("augment", samples, out, server, "-n", "2")
    assert again.exit_code == 0 and "already finished: skipped" in again.output
    assert server.log.total("chat") == sent
    (out / "_manifest.json").unlink()  # parts must be redone: every answer comes from the journal
    redo = synth("augment", samples, out, server, "-n", "2")
    assert redo.exit_code == 0
    assert server.log.total("chat") == sent
    assert [r["id"] for r in iter_rows(out)] == first
    stats = manifest(out)["totals"]["stats"]
    assert stats["llm_from_journal"] == sent and stats["llm_answered"] == 0  # every answer read back
    assert stats["llm_requests"] == 0 and stats["llm_prompt_tokens"] == 0  # journal answers cost nothing


def test_querygen_is_reproducible_and_follows_the_distributions(samples, fake, tmp_path):
    server, _ = fake
    common = ["-n", "2", "--seed", "7", "--question-types", "summary=1,yes_or_no=1", "--difficulties", "phd",
              "--query-lengths", "6=1"]
    runs = []
    for name in ("a", "b"):
        assert synth("querygen", samples[:1], tmp_path / name, server, *common).exit_code == 0
        runs.append([(r["query"], r["meta"]) for r in iter_rows(tmp_path / name) if r["origin"] == "querygen"])
    assert runs[0] == runs[1] and runs[0]
    metas = [json.loads(m) for _, m in runs[0]]
    assert {m["question_type"] for m in metas} <= {"summary", "yes_or_no"}
    assert {m["difficulty"] for m in metas} == {"phd"} and {m["length"] for m in metas} == {6}
    personas = {json.loads(line)["persona"] for line in (SAMPLES / "personas.jsonl").read_text().splitlines()}
    assert {m["persona"] for m in metas} <= personas


def test_querygen_rejects_a_character_not_offered(samples, make_openai_server, tmp_path):
    server = make_openai_server(handler=FakeModel(mode="stranger"))
    out = tmp_path / "out"
    result = synth("querygen", samples[:1], out, server, "--max-tries", "2")
    assert result.exit_code == 0, result.output
    assert {r["rule"] for r in iter_rejects(out)} == {"unknown_character"}
    assert all(r["origin"] == "source" for r in iter_rows(out))


def test_bad_persona_file_and_bad_distribution_are_usage_errors(samples, fake, tmp_path):
    server, _ = fake
    empty = tmp_path / "personas.jsonl"
    empty.write_text('{"name": "no persona field"}\nnot json\n', encoding="utf-8")
    result = stage_process("querygen", samples[:1], tmp_path / "o1", server, "--personas", str(empty))
    assert "no personas in" in one_line_error(result)
    result = stage_process("querygen", samples[:1], tmp_path / "o2", server, "--question-types", "riddles=1")
    assert "unknown value 'riddles'" in one_line_error(result)
    assert server.log.total() == 0


def test_with_an_embedder_personas_are_chosen_by_similarity_and_augment_checks_the_topic_band(
        samples, fake, tmp_path):
    server, _ = fake
    embed = ["--embedder", "local", "--embed-cache", str(tmp_path / "cache")]
    out = tmp_path / "q"
    assert synth("querygen", samples[:1], out, server, *embed).exit_code == 0
    rows = list(iter_rows(out))
    egg = next(r["id"] for r in rows if "boil an egg" in r["query"])
    persona = next(json.loads(r["meta"])["persona"] for r in rows if r["parent_id"] == egg)
    assert "cook" in persona  # the stand-in model takes the first candidate: the most similar persona
    out = tmp_path / "a"
    assert synth("augment", samples[:1], out, server, "-n", "1", "--max-tries", "1", *embed).exit_code == 0
    # The stand-in model's made-up words share no meaning with the source: below the band's floor.
    assert "off_topic" in {r["rule"] for r in iter_rejects(out)}
    assert manifest(out)["config"]["embedder"] == "local"


def test_a_failed_request_fails_the_run_and_only_it_is_sent_again(samples, fake, tmp_path):
    server, _ = fake
    out = tmp_path / "out"
    server.script(["reset"])
    first = synth("llm-negatives", samples[:1], out, server, "-n", "1", "--max-attempts", "1")
    assert first.exit_code == 1, first.output
    assert "requests failed" in first.output
    sent = server.log.total("chat")
    records = len(list(iter_rows(Path(samples[0]))))
    second = synth("llm-negatives", samples[:1], out, server, "-n", "1", "--max-attempts", "1")
    assert second.exit_code == 0, second.output
    assert server.log.total("chat") == sent + 1  # the answered ones come from the journal
    assert all(r["negative_origins"] == ["llm"] for r in iter_rows(out))
    assert len(list(iter_rows(out))) == records


def test_a_new_rows_meta_is_the_json_of_its_lineage(tmp_path):
    """`meta` is encoded once per template: it is the text `json.dumps` writes, with or without extra entries."""
    stage = ParaphraseStage({**PARAPHRASE.defaults(), "out": str(tmp_path)}, LLMSettings(model="模型"))
    template = stage.templates[0]
    lineage = {"template": template.name, "template_sha": template.sha, "model": "模型"}
    for extra in (None, {}, {"persona": "一位律师", "template": "x"}, None):
        assert stage.meta_json(template, extra) == json.dumps({**lineage, **(extra or {})}, ensure_ascii=False,
                                                              sort_keys=True)


class _KeepJobs:
    """Stands in for `--estimate`'s sample: keeps the jobs a stage builds instead of sending them."""

    def __init__(self) -> None:
        self.jobs: list[Any] = []

    def add(self, jobs: list[Any], expected: Any, embedded: Any) -> None:
        self.jobs += jobs


def test_paraphrase_checks_each_output_against_every_kept_one(tmp_path):
    """Kept outputs are measured once and compared with every later output: rules and reasons are those of the
    plain checks, whichever output of the record it is."""
    stage = ParaphraseStage({**PARAPHRASE.defaults(), "out": str(tmp_path)}, LLMSettings(model="m"))
    stage.sample = _KeepJobs()
    row = {"id": "r0", "lang": "en", "query": "What causes ocean tides on the coast?",
           "positive": "Ocean tides are caused mainly by the Moon. The Sun also contributes, less strongly."}
    stage.synthesise(Task.RETRIEVAL, [row])
    (job,) = stage.sample.jobs
    item = job.response_model.model_fields["items"].annotation.__args__[0]
    first = item(query="Why do seas by a shore rise and fall?",
                 positive="The Moon is the main cause of sea tides. The Sun adds a weaker pull as well.")
    again = item(query="Why do seas by the shore rise and fall?",
                 positive="The Moon is the main cause of sea tides. The Sun adds a weaker pull as well!")
    other = item(query="What makes coastal waters go up daily?",
                 positive="Tides come chiefly from lunar gravity; solar gravity adds a smaller share.")
    assert stage.check(job, first) is None
    job.kept.append(first)
    failure = stage.check(job, again)
    assert failure == ("near_duplicate_output", "near-identical to another output of the same record")
    assert stage.check(job, other) is None
    job.kept.append(other)
    assert stage.check(job, again) == failure and stage.check(job, other) == failure
    kept = job.measured_kept(lambda k: f"{k.query}\n{k.positive}")
    assert [m.text for m in kept] == [f"{k.query}\n{k.positive}" for k in job.kept]
    assert job.measured_kept(lambda k: "") is kept  # measured once, kept in the job
