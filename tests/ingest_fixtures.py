"""Helpers for the ingest and inspect tests: run the CLI like a user, read outputs and rejects back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from typer.testing import CliRunner

from synth.cli import app
from synth.store import iter_rejects, list_parts


def cli(*args: Any) -> Any:
    """`synth ARGS...` in-process; asserts nothing, returns click's Result (exit_code, output)."""
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)




def read_task(out: Path, task: str) -> pa.Table:
    """All parts of one task type of a stage directory, in part order."""
    tables = [pq.read_table(part.path) for part in list_parts(out) if part.task.value == task]
    return pa.concat_tables(tables)


def rows(out: Path, task: str) -> list[dict[str, Any]]:
    return read_task(out, task).to_pylist()


def rejects(out: Path) -> list[dict[str, Any]]:
    return list(iter_rejects(out))


def write_lines(path: Path, lines: list[bytes | str]) -> Path:
    """A file of raw lines (bytes kept exactly, text encoded as UTF-8), newline-terminated."""
    data = b"".join((line if isinstance(line, bytes) else line.encode("utf-8")) + b"\n" for line in lines)
    path.write_bytes(data)
    return path
