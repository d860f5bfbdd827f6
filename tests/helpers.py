"""What many tests share: the project's folders, and synth as a user's shell runs it (a process of its own)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "data_samples"
SYNTH = [sys.executable, "-c", "from synth.cli import main; main()"]
"""The `synth` command of this interpreter (the console script may not be on PATH in a test run)."""


def synth_process(*args: Any, timeout: float = 120, **options: Any) -> subprocess.CompletedProcess[str]:
    """`synth ARGS...` as a separate process: its exit code and stderr exactly as a user sees them."""
    return subprocess.run([*SYNTH, *(str(a) for a in args)], capture_output=True, text=True, timeout=timeout,
                          **options)


def estimated(output: str) -> dict[str, float]:
    """The estimate_* rows of a printed `--estimate` summary (the last stage's, when several are printed)."""
    return {key: float(value.replace(",", "")) for key, value in re.findall(r"(estimate_\w+)\s*│\s*([\d.,]+)", output)}


def started_servers(build: Callable[..., Any]) -> Iterator[Callable[..., Any]]:
    """The body of a server-factory fixture: `make(**options)` builds and starts a loopback server; every server
    it made is stopped when the test ends."""
    servers: list[Any] = []

    def make(**options: Any) -> Any:
        server = build(**options).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()
