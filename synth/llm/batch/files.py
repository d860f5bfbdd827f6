"""OpenAI Batch JSONL: request files split at the provider's limits, and result files (OpenAI's output and error
files, vLLM `run-batch` output) read back into the journal by `custom_id`."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from synth.errors import InputFileError
from synth.llm.batch.store import BatchStore
from synth.llm.engine import _STOP_REASONS as STOP_REASONS
from synth.llm.settings import LLMSettings

API_PREFIX = "/v1"
"""Batch lines name the endpoint with its API version (`/v1/chat/completions`); the engine's paths omit it."""


def request_line(key: str, url: str, body: str) -> bytes:
    """One request of a batch file; `custom_id` is the journal key, so answers map back whatever their order."""
    head = f'{{"custom_id": {json.dumps(key)}, "method": "POST", "url": "{API_PREFIX}{url}", "body": '
    return f"{head}{body}}}\n".encode()


def split_files(requests: Iterable[tuple[str, str, str]], max_requests: int, max_bytes: int
                ) -> list[tuple[str, list[str], bytes]]:
    """(url, keys, JSONL bytes) per file: one endpoint per file, at most `max_requests` lines and `max_bytes`."""
    files: list[tuple[str, list[str], bytes]] = []
    open_files: dict[str, tuple[list[str], list[bytes], int]] = {}
    for key, url, body in requests:
        line = request_line(key, url, body)
        if len(line) > max_bytes:
            raise InputFileError(f"one request is {len(line):,} bytes, over batch_max_bytes {max_bytes:,}")
        keys, lines, size = open_files.get(url, ([], [], 0))
        if keys and (len(keys) >= max_requests or size + len(line) > max_bytes):
            files.append((url, keys, b"".join(lines)))
            keys, lines, size = [], [], 0
        keys.append(key)
        lines.append(line)
        open_files[url] = (keys, lines, size + len(line))
    files += [(url, keys, b"".join(lines)) for url, (keys, lines, _) in open_files.items()]
    return files


@dataclass
class Imported:
    """What one result file added: answers journaled, requests that failed (by key), tokens and cost."""

    answered: set[str]
    errors: dict[str, str]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


def parse_lines(data: bytes, name: str) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL result file; a broken line is a one-line error naming it."""
    lines = []
    for number, raw in enumerate(data.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError:
            raise InputFileError(f"{name} line {number}: not JSON") from None
        if not isinstance(line, dict) or not isinstance(line.get("custom_id"), str):
            raise InputFileError(f"{name} line {number}: no custom_id (not a batch output file)")
        lines.append(line)
    return lines


def import_results(store: BatchStore, lines: list[dict[str, Any]], settings: LLMSettings) -> Imported:
    """Journal every good answer by `custom_id`; note errors and early stops. Works for OpenAI's output and error
    files and for vLLM's single output file (errors inline)."""
    done = Imported(set(), {})
    answers: list[tuple[str, Any]] = []
    stopped: list[tuple[str, str, str, str]] = []
    for line in lines:
        key = line["custom_id"]
        response = line.get("response") or {}
        body = response.get("body") if isinstance(response, dict) else None
        status = response.get("status_code") if isinstance(response, dict) else None
        if line.get("error") or status != 200 or not isinstance(body, dict):
            done.errors[key] = _error_text(line.get("error") or (body or {}).get("error") or f"status {status}")
            continue
        usage = body.get("usage") or {}
        prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        done.prompt_tokens += prompt
        done.completion_tokens += completion
        price = settings.batch_price(body.get("model") or settings.model)
        if price:
            done.cost_usd += (prompt * price.get("input", 0.0) + completion * price.get("output", 0.0)) / 1e6
        if "choices" not in body:  # embeddings: the whole answer, as the engine journals it
            answers.append((key, body))
            done.answered.add(key)
            continue
        try:
            choice = body["choices"][0]
            content = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            done.errors[key] = "answer without choices[0].message"
            continue
        reason = choice.get("finish_reason")
        if reason in STOP_REASONS:  # the stage rejects it as online (answer_cut, content_filtered)
            stopped.append((key, STOP_REASONS[reason], content, reason))
        else:
            answers.append((key, {"content": content, "prompt_tokens": prompt, "completion_tokens": completion}))
        done.answered.add(key)
    store.journal.put_many(answers)  # one transaction per file, not one commit per answer
    if stopped:
        store.stopped(stopped)
    return done


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        return f"{error.get('code') or error.get('type') or 'error'}: {error.get('message') or ''}".strip()
    return str(error)
