"""The stage registry is the one source of commands, flags, defaults, pipeline `use` names and the CLI reference."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import typer
from helpers import SAMPLES, SYNTH
from typer.testing import CliRunner

from synth.cli import app
from synth.errors import ConfigError
from synth.pipeline.plan import load_plan
from synth.reference import DEFAULT_PATH, render
from synth.stages import STAGES, stage_spec


def commands() -> dict:
    return typer.main.get_command(app).commands  # type: ignore[attr-defined]


def test_every_option_has_a_default_a_help_text_and_a_flag_or_is_config_only():
    group = commands()
    for spec in STAGES:
        flags = {o for p in group[spec.name].params for o in (*p.opts, *p.secondary_opts)}
        for option in spec.options:
            assert option.key in spec.defaults(), (spec.name, option.key)
            assert option.help.strip(), (spec.name, option.key)
            assert "default" not in option.help.lower(), (spec.name, option.key)  # defaults are appended, not typed
            declared = {f for decl in option.cli_flags for f in decl.split("/")}
            assert option.config_only or declared <= flags, (spec.name, option.key)


def test_every_stage_is_a_command_and_a_pipeline_use():
    group = commands()
    for spec in STAGES:
        assert spec.name in group and group[spec.name].help == spec.summary
        assert stage_spec(spec.name) is spec and stage_spec(spec.module_name) is spec
    with pytest.raises(ConfigError, match="unknown stage command 'x'"):
        stage_spec("x")


def test_shared_defaults_exist_once():
    from synth.filtering.options import RULE_DEFAULTS
    from synth.llm import LLMSettings
    from synth.llm.settings import LLM_OPTION_DEFAULTS
    from synth.mining.index import IndexSettings
    from synth.mining.miner import MineSettings
    from synth.mining.options import MINE_DEFAULTS

    assert RULE_DEFAULTS["relative_margin"] == MINE_DEFAULTS["relative_margin"] == MineSettings().relative_margin
    assert IndexSettings().nprobe == MINE_DEFAULTS["nprobe"] == stage_spec("mine").defaults()["nprobe"]
    assert LLMSettings().concurrency == LLM_OPTION_DEFAULTS["concurrency"] == stage_spec("paraphrase").defaults()[
        "concurrency"]


def test_help_shows_the_declared_default():
    result = CliRunner().invoke(app, ["paraphrase", "--help"], env={"COLUMNS": "300"})
    assert "[default: 0.3]" in result.output and "[default: 20]" in result.output


def test_committed_cli_reference_is_current():
    assert DEFAULT_PATH.read_text(encoding="utf-8") == render(), "run: python -m synth.reference"


def pipeline(tmp_path: Path, stage: str) -> Path:
    path = tmp_path / "pipeline.toml"
    path.write_text(f'[[stage]]\nuse = "ingest"\ninputs = ["{SAMPLES}/qa.jsonl"]\nshape = "qa"\n{stage}',
                    encoding="utf-8")
    return path


@pytest.mark.parametrize("name", ["../../escaped", "a/b", ".", "..", "has space", "x.y"])
def test_stage_names_must_be_plain_folder_names(tmp_path, name):
    path = pipeline(tmp_path, f'name = "{name}"\n')
    with pytest.raises(ConfigError, match="must be a plain folder name"):
        load_plan(path)


@pytest.mark.parametrize("name", ["../../escaped", "/tmp/elsewhere", "a/b"])
def test_a_stage_out_and_the_run_name_must_be_plain_folder_names_too(tmp_path, name):
    with pytest.raises(ConfigError, match=r"out .* must be a plain folder name"):
        load_plan(pipeline(tmp_path, f'out = "{name}"\n'))
    path = tmp_path / "named.toml"
    path.write_text(f'name = "{name}"\n' + pipeline(tmp_path, "").read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"name .* must be a plain folder name"):
        load_plan(path)
    plan = load_plan(pipeline(tmp_path, 'out = "mine_2"\n'))
    assert plan.stages[0].out == plan.run_dir / "mine_2"


def test_a_bad_stage_name_is_one_line_exit_2_and_writes_nothing(tmp_path):
    folder = tmp_path / "a" / "b"
    folder.mkdir(parents=True)
    path = pipeline(folder, 'name = "../../escaped"\n')
    result = subprocess.run([*SYNTH, "run", str(path), "--out",
                             str(folder / "run")], capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 2 and result.stderr.startswith("error:") and len(result.stderr.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b", "pipeline.toml"]


def test_plain_names_pass(tmp_path):
    plan = load_plan(pipeline(tmp_path, 'name = "Ingest_qa-2"\n'))
    assert plan.stages[0].out.name == "Ingest_qa-2"


@pytest.mark.parametrize(("judge", "expected"), [
    ("false", False), ('"off"', False), ("{ default = false }", False),
    ('{ default = "off", querygen = false }', False),
    ("true", True), ("{ querygen = true }", True), ("{ default = false, llm = true }", True),
])
def test_filter_needs_the_llm_only_when_the_judge_is_on(tmp_path, judge, expected):
    plan = load_plan(pipeline(tmp_path, f'[[stage]]\nuse = "filter"\njudge = {judge}\n'))
    assert plan.stages[1].needs_llm() is expected
    assert plan.stages[0].needs_llm() is False
