"""Batch mode of a whole stage: run it with a collector, submit what it could not answer, poll, import, run again.

A round runs the stage's parts with the engine's batch hook: what the journal answers is used, what is missing is
collected. The collected requests are journaled, written as Batch JSONL (split at the limits), uploaded and
submitted, each step journaled before the next; then every live batch is polled with backoff and its output and
error files are mapped back into the journal. The next round's checks run on those answers, and what needs another
try (a failed check, a request error) is in the next round's batches. Rounds end when a run asks for nothing new,
which the stage's own `max_tries` bounds. In `offline` mode one round runs and the requests wait for
`synth batch export`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from synth.errors import ConfigError
from synth.executor import console
from synth.executor.lock import stage_lock
from synth.lineage import batch_note
from synth.llm.batch.client import BatchClient
from synth.llm.batch.collector import Collector
from synth.llm.batch.files import API_PREFIX, Imported, import_results, parse_lines, request_line, split_files
from synth.llm.batch.store import TERMINAL, BatchStore, Job
from synth.llm.engine import BATCH_COLLECTOR
from synth.llm.journal import JOURNAL_NAME as JOURNAL
from synth.llm.settings import LLMSettings
from synth.stage import StageSummary
from synth.store import Manifest, read_manifest

OFFLINE_URL = "http://offline.invalid/v1"
"""The endpoint an `offline` run names when none is configured: every request goes to a file, none is sent."""
MAX_POLL_FACTOR = 20
"""The wait between polls grows by half each time, up to this many times `batch_poll`."""


def run_batched(run: Callable[[dict[str, Any]], StageSummary], options: dict[str, Any], stage: str) -> StageSummary:
    """Run a stage (`run(options)`) in `batch` or `offline` mode until it asks for nothing the journal lacks."""
    settings = LLMSettings.from_options(options)
    if settings.mode == "batch":
        settings = settings.for_batch()  # the endpoint with the Batch API, with its own key and model
    if not settings.model:
        raise ConfigError(f"--llm-mode {settings.mode} needs --model: it is written into every request")
    if settings.mode == "offline" and not settings.base_url:
        options = {**options, "base_url": OFFLINE_URL}
    out = Path(options["out"])
    out.mkdir(parents=True, exist_ok=True)
    client = BatchClient(settings) if settings.mode == "batch" else None
    store = BatchStore(out / JOURNAL, stage)
    store.forget_errors()
    try:
        while True:
            collector = Collector(store)
            token = BATCH_COLLECTOR.set(collector)
            try:
                summary = run(options)
            finally:
                BATCH_COLLECTOR.reset(token)
            collector.flush()
            waiting, in_flight = store.counts()
            if client is None or not waiting + in_flight:
                break
            console.print(f"[{stage}] batch round: {waiting:,} requests to submit, {in_flight:,} in batches",
                          markup=False)
            submit(store, client, settings)
            wait(store, client, settings)
        record(out, store)
    finally:
        store.close()
    if client is None and waiting:
        console.print(f"[{stage}] {waiting:,} requests wait for answers: `synth batch export {out} --out FILE.jsonl`, "
                      f"answer it (e.g. vllm run-batch), `synth batch import {out} OUT.jsonl`, then run again",
                      markup=False, soft_wrap=True)
    return summary


def submit(store: BatchStore, client: BatchClient, settings: LLMSettings) -> None:
    """Journal, upload and submit the waiting requests; finish what a killed run left half submitted."""
    for url, keys, _ in split_files(store.pending(), settings.batch_max_requests, settings.batch_max_bytes):
        store.new_job(url, API_PREFIX + url, keys)
    for job in store.jobs():
        if job.live and job.batch_id is None:
            resume_submission(store, client, settings, job)


def resume_submission(store: BatchStore, client: BatchClient, settings: LLMSettings, job: Job) -> None:
    """Upload (unless done) and submit (unless an earlier run did: its batch carries our job id)."""
    batch = client.find(job.id) if job.file_id else None
    if batch is None:
        file_id = job.file_id
        if file_id is None:
            data = b"".join(request_line(*row) for row in store.bodies_of(job.id))
            file_id = client.upload(f"{job.id}.jsonl", data)
            store.update_job(job.id, file_id=file_id, status="uploaded")
        batch = client.submit(file_id, job.url, job.id)
    store.update_job(job.id, batch_id=batch.id, status=batch.status)


def wait(store: BatchStore, client: BatchClient, settings: LLMSettings) -> None:
    """Poll every live batch with backoff until all ended, reading each one back as it ends."""
    interval = settings.batch_poll
    while True:
        for job in [j for j in store.jobs() if j.live and j.batch_id]:
            batch = client.retrieve(job.batch_id)
            counts = batch.request_counts
            store.update_job(job.id, status=batch.status, completed=counts.completed if counts else 0,
                             failed=counts.failed if counts else 0)
            if batch.status in TERMINAL:
                finish(store, client, settings, job, batch)
        if not any(j.live for j in store.jobs()):
            return
        time.sleep(interval)
        interval = min(interval * 1.5, settings.batch_poll * MAX_POLL_FACTOR)


def finish(store: BatchStore, client: BatchClient, settings: LLMSettings, job: Job, batch: Any) -> None:
    """Map an ended batch's output and error files into the journal; what it did not answer waits for the next."""
    lines = []
    for file_id in (batch.output_file_id, batch.error_file_id):
        if file_id:
            lines += parse_lines(client.content(file_id), f"batch {batch.id} file {file_id}")
    done = import_results(store, lines, settings)
    problems = getattr(batch.errors, "data", None) or []
    why = f"not answered: batch {batch.status}" + (f" ({problems[0].message})" if problems else "")
    for key in store.keys_of(job.id):
        if key not in done.answered:
            done.errors.setdefault(key, why)
    settle(store, settings, done, job.id)


def settle(store: BatchStore, settings: LLMSettings, done: Imported, job_id: str) -> None:
    """Record an import's counts and cost on its job, then release or retire its requests."""
    store.update_job(job_id, finished=time.time(), completed=len(done.answered), failed=len(done.errors),
                     prompt_tokens=done.prompt_tokens, completion_tokens=done.completion_tokens,
                     cost_usd=done.cost_usd)
    store.settle(done.answered, done.errors, settings.max_attempts)


def batch_totals(jobs: list[Job]) -> dict[str, Any]:
    """The manifest's `batch` entry: batches, requests, answers, errors, tokens, cost at batch prices and the time
    some batch was out (overlapping batches count once)."""
    waited, end = 0.0, 0.0
    for job in sorted(jobs, key=lambda j: j.created):
        stop = job.finished or time.time()
        waited += max(0.0, stop - max(job.created, end))
        end = max(end, stop)
    return {"batches": len(jobs), "requests": sum(j.requests for j in jobs),
            "answered": sum(j.completed for j in jobs), "errors": sum(j.failed for j in jobs),
            "prompt_tokens": sum(j.prompt_tokens for j in jobs),
            "completion_tokens": sum(j.completion_tokens for j in jobs),
            "cost_usd": round(sum(j.cost_usd for j in jobs), 6), "wait_seconds": round(waited, 1)}


def record(out: Path, store: BatchStore) -> None:
    """Write the batch totals into the stage's manifest (its other entries are the executor's) and say them."""
    jobs = store.jobs()
    manifest = read_manifest(out)
    if jobs and manifest is not None:
        with stage_lock(out):
            Manifest(out, manifest["stage"]).set("batch", batch_totals(jobs))
        console.print(f"[{manifest['stage']}] batch mode: {batch_note(read_manifest(out) or {})}", markup=False)
