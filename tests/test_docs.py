"""The README stays a landing page whose links, commands, dependency list and examples match the project."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from helpers import ROOT, SAMPLES, SYNTH
from openai_server import OpenAIServer

README = ROOT / "README.md"
DOCS = ROOT / "docs"
CLI_REFERENCE = DOCS / "reference" / "cli.md"  # generated from the code, not written by hand

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def prose(text: str) -> str:
    """The text without its fenced code blocks (a `# comment` in a block is not a heading, a link there not a link)."""
    return FENCE.sub("", text)


def code_blocks(path: Path, language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(path.read_text(encoding="utf-8")) if lang == language]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {slug(m) for m in re.findall(r"^#+ (.+)$", prose(path.read_text(encoding="utf-8")), re.M)}


def broken_links(page: Path) -> list[str]:
    """Relative links of `page` whose file or heading does not exist."""
    broken = []
    for target in LINK.findall(prose(page.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: not ours to check offline
        file_part, _, anchor = target.partition("#")
        path = (page.parent / file_part).resolve() if file_part else page
        if path == CLI_REFERENCE and not path.exists():
            continue  # written by the CLI reference generator; checked like any page once it exists
        if not path.is_file():
            broken.append(f"{target}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{target}: no heading '{anchor}' in {path.relative_to(ROOT)}")
    return broken


def test_readme_stays_a_landing_page() -> None:
    assert len(README.read_text(encoding="utf-8").splitlines()) < 300


def test_readme_links_into_docs_resolve() -> None:
    links = LINK.findall(prose(README.read_text(encoding="utf-8")))
    assert sum(link.startswith("docs/") for link in links) >= 10  # the commands and the documentation list
    assert broken_links(README) == []


@pytest.mark.parametrize("page", sorted(DOCS.glob("*.md")), ids=lambda p: p.name)
def test_docs_links_resolve(page: Path) -> None:
    assert broken_links(page) == []


def test_readme_core_list_is_pyproject_dependencies() -> None:
    listed = re.search(r"The core \(`pip install -e \.`\) is light: ([^.]+)\.", README.read_text(encoding="utf-8"))
    assert listed, "the README's install section names the core dependencies"
    names = {name.strip() for name in listed.group(1).split(",")}
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    declared = {re.split(r"[<>=!~\[ ;]", dep, maxsplit=1)[0] for dep in pyproject["project"]["dependencies"]}
    assert names == declared


def test_quickstart_commands_are_what_ci_runs() -> None:
    readme = README.read_text(encoding="utf-8")
    assert "bash .ci/setup && .venv/bin/synth run data_samples/pipeline.toml\n" in readme
    assert "\nbash .ci/run\n" in readme
    ci_run = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "bash .ci/setup" in ci_run and "HF_HUB_OFFLINE=1" in ci_run
    assert ci_run.rstrip().endswith(".venv/bin/python -m pytest -q tests")
    assert "HF_HUB_OFFLINE=1 .venv/bin/python -m pytest -q tests" in readme


def test_no_file_cites_a_document_outside_the_project() -> None:
    outside = ["../" + "shared", "REVIEW" + ".md", "DESIGN" + ".md", "METHOD" + ".md"]
    files = [README, ROOT / "pyproject.toml", *(ROOT / ".ci").iterdir()]
    for folder in ("synth", "tests", "bench", "docs", "prompts", "data_samples"):
        files += [p for p in (ROOT / folder).rglob("*") if p.suffix in {".py", ".md", ".toml", ".jinja", ".jsonl"}]
    cited = [f"{p.relative_to(ROOT)}: {name}" for p in files if p.is_file()
             for name in outside if name in p.read_text(encoding="utf-8", errors="replace")]
    assert cited == []


def test_readme_pipeline_resolves(tmp_path: Path) -> None:
    """The README's pipeline file passes `synth run`'s checks of every stage's options (only ingest runs)."""
    (pipeline,) = code_blocks(README, "toml")
    (tmp_path / "pipeline.toml").write_text(pipeline, encoding="utf-8")
    (tmp_path / "qa.jsonl").write_bytes((SAMPLES / "qa.jsonl").read_bytes())
    run = synth_cli(tmp_path, "run", tmp_path / "pipeline.toml", "--out", tmp_path / "run", "--to", "ingest-qa")
    assert run.returncode == 0, run.stderr
    planned = tomllib.loads((tmp_path / "run" / "run.toml").read_text(encoding="utf-8"))
    assert [stage["use"] for stage in planned["stage"]] == ["ingest", "paraphrase", "mine", "filter"]


def synth_cli(tmp_path: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """`synth ARGS...` as a user's shell runs it, with no LLM endpoint configured."""
    command = [*SYNTH, *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=example_env(tmp_path, None))


def example_env(tmp_path: Path, server: OpenAIServer | None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "SYNTH_EMBED_CACHE": str(tmp_path / "embed-cache"), "HF_HUB_OFFLINE": "1"}
    env.pop("OPENAI_BASE_URL", None)
    env.pop("OPENAI_API_KEY", None)
    if server is not None:
        env.update(OPENAI_BASE_URL=server.base_url, OPENAI_API_KEY=server.api_key or "")
    return env


EXAMPLES = [(page, index) for page in (README, DOCS / "python-api.md")
            for index in range(len(code_blocks(page, "python")))]


@pytest.mark.parametrize(("page", "index"), EXAMPLES, ids=[f"{p.name}-{i}" for p, i in EXAMPLES])
def test_python_examples_run(page: Path, index: int, tmp_path: Path, openai_server: OpenAIServer) -> None:
    """Each Python example runs as a user would save and run it, against the loopback server, in a fresh folder."""
    (tmp_path / "data_samples").symlink_to(SAMPLES)
    ingest = synth_cli(tmp_path, "ingest", SAMPLES / "qa.jsonl", "--shape", "qa", "--out",
                       tmp_path / "runs" / "qa")
    assert ingest.returncode == 0, ingest.stderr  # the stage directory the store example reads
    script = tmp_path / "example.py"
    script.write_text(code_blocks(page, "python")[index], encoding="utf-8")
    run = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env=example_env(tmp_path, openai_server))
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip()
    if "LLMEngine" in script.read_text(encoding="utf-8"):
        assert run.stdout.count("True paraphrase=") == 2
