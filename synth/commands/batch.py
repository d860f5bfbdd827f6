"""`synth batch status|cancel|export|import`: the batches of stages run with `--llm-mode batch`, and offline batch
files (`--llm-mode offline`) answered elsewhere, e.g. by `vllm run-batch`."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from synth.config import load_toml
from synth.errors import ConfigError, InputFileError
from synth.lineage import duration
from synth.llm.batch.client import BatchClient
from synth.llm.batch.driver import JOURNAL, record, settle
from synth.llm.batch.files import import_results, parse_lines, request_line
from synth.llm.batch.store import BatchStore
from synth.llm.settings import LLM_OPTION_DEFAULTS, LLMSettings
from synth.store import read_manifest

console = Console()
batch_app = typer.Typer(help="Batches of LLM stages run with --llm-mode batch, and offline batch files.",
                        no_args_is_help=True)


def stage_dirs(path: Path) -> list[Path]:
    """`path` when it is a stage directory with a journal, else its stage directories that have one (a run)."""
    if (path / JOURNAL).is_file():
        return [path]
    found = sorted(p.parent for p in path.glob(f"*/{JOURNAL}")) if path.is_dir() else []
    if not found:
        raise InputFileError(f"no LLM stage journal ({JOURNAL}) in {path} or its folders")
    return found


def one_stage(path: Path) -> Path:
    if not (path / JOURNAL).is_file():
        raise InputFileError(f"not an LLM stage directory (no {JOURNAL}): {path}")
    return path


@batch_app.command("status")
def status_command(run_or_stage: Path = typer.Argument(..., help="A run directory or one stage directory.")) -> None:
    """Every batch of the stage(s): state, requests answered and failed, age; and requests waiting for a batch."""
    table = Table(title=f"batches of {run_or_stage}")
    for column in ("stage", "batch", "endpoint", "status", "requests", "answered", "failed", "age", "took"):
        table.add_column(column, overflow="fold")
    waiting_lines = []
    for directory in stage_dirs(run_or_stage):
        store = BatchStore(directory / JOURNAL)
        try:
            for job in store.jobs():
                took = duration(job.finished - job.created) if job.finished else "-"
                table.add_row(directory.name, job.batch_id or job.id, job.endpoint, job.status, f"{job.requests:,}",
                              f"{job.completed:,}", f"{job.failed:,}", duration(time.time() - job.created), took)
            waiting, in_flight = store.counts()
        finally:
            store.close()
        waiting_lines.append(f"{directory.name}: {waiting:,} requests wait for a batch, {in_flight:,} are in batches")
    console.print(table)
    for line in waiting_lines:
        console.print(line, highlight=False, markup=False)


@batch_app.command("cancel")
def cancel_command(
    run_or_stage: Path = typer.Argument(..., help="A run directory or one stage directory."),
    base_url: str | None = typer.Option(None, "--base-url", help="The endpoint the batches went to \\[default: "
                                        "$OPENAI_BASE_URL]."),
    api_key: str | None = typer.Option(None, "--api-key", help="API key \\[default: $OPENAI_API_KEY]."),
) -> None:
    """Cancel every live batch; the next run of the stage keeps what they answered and resubmits the rest."""
    client = BatchClient(LLMSettings.from_options({"base_url": base_url, "api_key": api_key}))
    cancelled = 0
    for directory in stage_dirs(run_or_stage):
        store = BatchStore(directory / JOURNAL)
        try:
            for job in store.jobs():
                if job.live and job.batch_id:
                    store.update_job(job.id, status=client.cancel(job.batch_id).status)
                    cancelled += 1
        finally:
            store.close()
    console.print(f"cancelling {cancelled} batches; run the stage again to collect what they answered",
                  highlight=False)


@batch_app.command("export")
def export_command(
    stage_dir: Path = typer.Argument(..., help="A stage directory run with --llm-mode offline (or batch)."),
    out: Path = typer.Option(..., "--out", "-o", help="The OpenAI Batch JSONL file to write."),
) -> None:
    """Write the stage's requests that wait for answers as OpenAI Batch JSONL (custom_id = journal key)."""
    store = BatchStore(one_stage(stage_dir) / JOURNAL)
    try:
        pending = store.pending()
    finally:
        store.close()
    if not pending:
        console.print(f"no requests wait for answers in {stage_dir}: run the stage with --llm-mode offline first",
                      highlight=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(b"".join(request_line(*row) for row in pending))
    console.print(f"wrote {len(pending):,} requests to {out}; answer them (e.g. `vllm run-batch -i {out} -o OUT.jsonl "
                  f"--model MODEL`), then `synth batch import {stage_dir} OUT.jsonl`", highlight=False, soft_wrap=True)


@batch_app.command("import")
def import_command(
    stage_dir: Path = typer.Argument(..., help="The stage directory the requests were exported from."),
    results: Path = typer.Argument(..., help="Batch output JSONL (vLLM run-batch, or OpenAI output/error files)."),
    config: Path | None = typer.Option(None, "--config", help="TOML file whose [llm] table (a pipeline's) and "
                                       "[STAGE] table give `prices`, `batch_prices`, `model` and `max_attempts`: the "
                                       "answers' cost at batch prices."),
) -> None:
    """Journal the answers of a batch output file by custom_id; the next run of the stage completes from them."""
    if not results.is_file():
        raise InputFileError(f"no such file: {results}")
    settings = import_settings(one_stage(stage_dir), config)
    store = BatchStore(stage_dir / JOURNAL)
    try:
        lines = parse_lines(results.read_bytes(), str(results))
        done = import_results(store, lines, settings)
        job_id = store.new_job("file", results.name, [])
        store.update_job(job_id, requests=len(lines), status="imported")
        settle(store, settings, done, job_id)
        record(stage_dir, store)
    finally:
        store.close()
    console.print(f"imported {len(done.answered):,} answers and {len(done.errors):,} failed lines (exported again "
                  f"until they fail {settings.max_attempts} times); run the stage again to use them", highlight=False)


def import_settings(stage_dir: Path, config: Path | None) -> LLMSettings:
    """The LLM settings an import needs (prices, model, attempts): a pipeline's `[llm]` table overlaid with the
    stage's own table (named as in its manifest) of the `--config` file; the defaults without one."""
    if config is None:
        return LLMSettings()
    data = load_toml(config)
    stage = (read_manifest(stage_dir) or {}).get("stage", stage_dir.name)
    tables = [data.get("llm", {}), data.get(stage, {})]
    if not all(isinstance(t, dict) for t in tables):
        raise ConfigError(f"config keys [llm] and [{stage}] in {config} must be tables")
    return LLMSettings.from_options({k: v for t in tables for k, v in t.items() if k in LLM_OPTION_DEFAULTS})


def register(app: typer.Typer) -> None:
    app.add_typer(batch_app, name="batch")
