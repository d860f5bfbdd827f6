"""A real OpenAI-compatible HTTP server on 127.0.0.1 for tests and benchmarks, with injectable latency and faults.

Endpoints: POST /v1/chat/completions, POST /v1/embeddings, GET /v1/models.

In tests, use the fixtures from tests/conftest.py::

    def test_something(openai_server):               # default options, started and stopped for you
        settings = LLMSettings.from_options({"base_url": openai_server.base_url, "api_key": openai_server.api_key})

    def test_faults(make_openai_server):
        server = make_openai_server(latency=0.01, faults={"server_error": 0.1, "rate_limit": 0.05}, seed=1)
        server.script(["server_error", None, "empty"])   # the next chat requests, in order, before the random mix
        server.handler = lambda body: json.dumps({"query": "q", "positive": "p"})   # answer like your stage's model

Options (keywords of OpenAIServer / make_openai_server):
- api_key: required bearer key (None accepts any); a wrong key gets 401 whose message echoes the key sent.
- latency: seconds added to every request. model: the id /v1/models lists.
- latency_sigma: with it, each request's latency is lognormal with median `latency` and this sigma (heavy-tailed,
  like a real API's), drawn from its own seeded generator.
- faults: {fault: probability} mixed in with a seeded `random.Random(seed)`; `script([...])` queues faults first.
  Faults: rate_limit (429 with Retry-After, retry-after-ms and x-ratelimit-* headers), server_error (500),
  unavailable (503), hang (no answer for `hang_seconds`, then 504), reset (connection dropped),
  truncated (200 with a cut JSON body), bad_schema (valid JSON that breaks the schema), empty (empty content),
  length (content cut, finish_reason "length"). Content faults apply to chat only.
- style: how response_format is treated: "openai" (json_schema and json_object accepted), "llama_cpp"
  (500 on json_schema, accepts {"type": "json_object", "schema": ...}), "text_only" (400 on any response_format).
- rpm, rpm_window: a server-side limit of `rpm` requests per minute over a sliding window of `rpm_window` seconds
  (shorter windows make tests quick); excess requests get 429 with headers.
- handler: `handler(request_body) -> str`, the assistant content. The default answers a deterministic instance of
  the JSON schema found in response_format or in the prompt (different prompts, different answers), else text.
- max_in_flight: answer 429 (Retry-After 0) to a request that arrives while this many are already being served,
  like a server that sheds load above its capacity; `server.log.peak_in_flight` is the most it ever held.
- embedding_dim: size of the deterministic L2-normalised vectors /v1/embeddings returns (hash of each text).

Request log: `server.log.received[(endpoint, body_hash)]` counts requests received, `server.log.answered[...]`
counts good answers (status 200, no fault), `server.log.faults` counts each fault injected (and
"server_rpm_limit" refusals), `server.log.times` holds arrival times, `server.log.last_headers` the last headers;
`body_hash(body_dict)` computes the key of a body.

For benchmarks, run it in its own process: `with spawn_server_process(latency=0.1) as base_url: ...`,
or `python tests/openai_server.py --latency 0.1 --port 8000`.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import hashlib
import json
import math
import random
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aiohttp import web

FAULTS = ("rate_limit", "server_error", "unavailable", "hang", "reset", "truncated", "bad_schema", "empty", "length")
CONTENT_FAULTS = {"bad_schema", "empty", "length"}
Handler = Callable[[dict[str, Any]], str]


def body_hash(body: dict[str, Any]) -> str:
    """Key of a request body in the request log."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


# ----- deterministic answers --------------------------------------------------------------------------------------


def _digest(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("\x1f".join(parts).encode()).digest()[:8], "big")


def schema_instance(schema: dict[str, Any], seed: str, defs: dict[str, Any] | None = None, path: str = "") -> Any:
    """A value that validates against `schema`, varying with `seed` (pydantic-style $defs/$ref, anyOf, enums)."""
    defs = defs if defs is not None else schema.get("$defs", schema.get("definitions", {}))
    if "$ref" in schema:
        return schema_instance(defs[schema["$ref"].rsplit("/", 1)[-1]], seed, defs, path)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return schema_instance(options[0], seed, defs, path)
    if "allOf" in schema:
        return schema_instance(schema["allOf"][0], seed, defs, path)
    if "const" in schema:
        return schema["const"]
    h = _digest(seed, path)
    if "enum" in schema:
        return schema["enum"][h % len(schema["enum"])]
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties", {})
        return {name: schema_instance(sub, seed, defs, f"{path}.{name}") for name, sub in props.items()}
    if kind == "array":
        low, high = schema.get("minItems", 2), schema.get("maxItems", max(2, schema.get("minItems", 2)))
        count = max(low, min(high, 2))
        return [schema_instance(schema.get("items", {}), seed, defs, f"{path}[{i}]") for i in range(count)]
    if kind == "integer":
        low = schema.get("minimum", 0)
        high = schema.get("maximum", low + 9)
        return low + h % (high - low + 1)
    if kind == "number":
        low, high = schema.get("minimum", 0.0), schema.get("maximum", 1.0)
        return low + (h % 1000) / 999 * (high - low)
    if kind == "boolean":
        return h % 2 == 0
    if kind == "null":
        return None
    text = f"{path.strip('.') or 'text'} {h:016x}"
    text = text.ljust(schema.get("minLength", 0), "x")
    return text[: schema["maxLength"]] if "maxLength" in schema else text


def _schema_in_text(text: str) -> dict[str, Any] | None:
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(value, dict) and ("properties" in value or "$defs" in value):
            return value
    return None


def request_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON schema a request asks for: in response_format, or else written into one of the messages."""
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        return fmt.get("json_schema", {}).get("schema")
    if fmt.get("schema"):
        return fmt["schema"]
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, str) and "{" in content:
            found = _schema_in_text(content)
            if found:
                return found
    return None


def prompt_text(body: dict[str, Any]) -> str:
    return json.dumps(body.get("messages", []), sort_keys=True, ensure_ascii=False)


def default_handler(body: dict[str, Any]) -> str:
    """A schema instance when a schema is asked for, else a short text that depends on the prompt."""
    schema = request_schema(body)
    seed = prompt_text(body)
    if schema:
        return json.dumps(schema_instance(schema, seed))
    last = next((m.get("content", "") for m in reversed(body.get("messages", [])) if m.get("role") == "user"), "")
    return f"answer {_digest(seed):016x} to: {str(last)[:60]}"


def embedding(text: str, dim: int) -> list[float]:
    """Deterministic unit vector for a text."""
    vector = np.random.default_rng(_digest(text)).standard_normal(dim)
    return (vector / np.linalg.norm(vector)).round(6).tolist()


# ----- server -----------------------------------------------------------------------------------------------------


@dataclass
class RequestLog:
    received: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    answered: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    faults: collections.Counter[str] = field(default_factory=collections.Counter)
    times: list[float] = field(default_factory=list)
    peak_in_flight: int = 0
    last_headers: dict[str, str] = field(default_factory=dict)

    def total(self, endpoint: str | None = None) -> int:
        return sum(n for (ep, _), n in self.received.items() if endpoint in (None, ep))


class OpenAIServer:
    """The server, run in a background thread with its own event loop; use as a context manager."""

    def __init__(
        self,
        api_key: str | None = "test-key",
        latency: float = 0.0,
        latency_sigma: float = 0.0,
        faults: dict[str, float] | None = None,
        seed: int = 0,
        style: str = "openai",
        rpm: float | None = None,
        rpm_window: float = 60.0,
        retry_after: float = 0.2,
        hang_seconds: float = 3.0,
        embedding_dim: int = 32,
        model: str = "test-model",
        handler: Handler | None = None,
        max_in_flight: int | None = None,
        tokens: Callable[[str], int] | None = None,
    ):
        """`tokens`: count a text's tokens as the model's tokenizer does, for `usage` (the chat template adding 3 per
        request and 4 per message, as OpenAI documents); without it, characters of the request's JSON / 4."""
        unknown = set(faults or {}) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults: {sorted(unknown)}")
        if style not in ("openai", "llama_cpp", "text_only"):
            raise ValueError(f"unknown style {style!r}")
        self.api_key = api_key
        self.latency = latency
        self.latency_sigma = latency_sigma
        self._latency_random = random.Random(seed + 1)
        self.faults = dict(faults or {})
        self.random = random.Random(seed)
        self.style = style
        self.rpm = rpm
        self.rpm_window = rpm_window
        self.retry_after = retry_after
        self.hang_seconds = hang_seconds
        self.embedding_dim = embedding_dim
        self.model = model
        self.handler: Handler = handler or default_handler
        self.max_in_flight = max_in_flight
        self.tokens = tokens
        self.in_flight = 0
        self.log = RequestLog()
        self._script: collections.deque[str | None] = collections.deque()
        self._window: collections.deque[float] = collections.deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, faults: list[str | None]) -> None:
        """Faults for the next requests, in order (None = answer normally), before the random mix applies."""
        unknown = {f for f in faults if f is not None} - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults: {sorted(unknown)}")
        self._script.extend(faults)

    # ----- lifecycle ----------------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[self._count_in_flight])
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_get("/v1/models", self._models)
        return app

    async def start_async(self, port: int = 0) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port, backlog=2048)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def start(self) -> OpenAIServer:
        ready = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self.start_async())
            ready.set()
            self._loop.run_forever()
            assert self._runner is not None
            self._loop.run_until_complete(self._runner.cleanup())
            self._loop.close()

        self._thread = threading.Thread(target=serve, name="openai-test-server", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("test server did not start")
        return self

    def stop(self) -> None:
        if self._loop and self._thread:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----- behaviours ---------------------------------------------------------------------------------------------

    def _next_fault(self) -> str | None:
        if self._script:
            return self._script.popleft()
        roll = self.random.random()
        for name, probability in self.faults.items():
            if roll < probability:
                return name
            roll -= probability
        return None

    def _rate_headers(self, remaining: int, reset: float) -> dict[str, str]:
        assert self.rpm is not None
        return {
            "x-ratelimit-limit-requests": str(int(self.rpm)),
            "x-ratelimit-remaining-requests": str(max(0, remaining)),
            "x-ratelimit-reset-requests": f"{reset:.3f}s",
        }

    def _over_limit(self) -> web.Response | None:
        """The server-side requests-per-minute limit (sliding window); None when the request may pass."""
        if not self.rpm:
            return None
        now = time.monotonic()
        while self._window and self._window[0] <= now - self.rpm_window:
            self._window.popleft()
        allowed = int(self.rpm * self.rpm_window / 60.0)
        if len(self._window) >= allowed:
            reset = self._window[0] + self.rpm_window - now
            self.log.faults["server_rpm_limit"] += 1
            headers = {**self._rate_headers(0, reset), "retry-after-ms": str(int(reset * 1000) + 1),
                       "retry-after": str(math.ceil(reset))}
            return _error(429, "Rate limit reached for requests", headers)
        self._window.append(now)
        return None

    def _auth_error(self, request: web.Request) -> web.Response | None:
        if self.api_key is None:
            return None
        sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if sent == self.api_key:
            return None
        # Like real servers, echo what was sent: the client must keep it out of its own messages.
        return _error(401, f"Incorrect API key provided: {sent or '(none)'}", {})

    async def _fault_response(self, fault: str, request: web.Request) -> web.StreamResponse | None:
        """The response for an HTTP-level fault, or None for content faults (shaped by the caller)."""
        if fault == "rate_limit":
            headers = {"retry-after": str(math.ceil(self.retry_after)),
                       "retry-after-ms": str(int(self.retry_after * 1000))}
            return _error(429, "Rate limit reached (injected)", headers)
        if fault == "server_error":
            return _error(500, "The server had an error while processing your request (injected)", {})
        if fault == "unavailable":
            return _error(503, "Service unavailable (injected)", {})
        if fault == "hang":
            await asyncio.sleep(self.hang_seconds)
            return _error(504, "Gateway timeout (injected hang)", {})
        if fault == "reset":
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=500)
        return None

    @web.middleware
    async def _count_in_flight(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Requests being served; above `max_in_flight` a new one is shed with 429."""
        if self.max_in_flight is not None and self.in_flight >= self.max_in_flight and request.method == "POST":
            self.log.faults["over_capacity"] += 1
            return _error(429, "Server over capacity", {"retry-after": "0"})
        self.in_flight += 1
        self.log.peak_in_flight = max(self.log.peak_in_flight, self.in_flight)
        try:
            return await handler(request)
        finally:
            self.in_flight -= 1

    async def _prelude(self, request: web.Request, endpoint: str) -> tuple[dict[str, Any] | None, str, Any]:
        """Latency, auth, limit and fault decision shared by the POST endpoints: (body, its hash, fault or early
        response); the hash is computed once per request (a large body costs the server as much as the client)."""
        if self.latency:
            jitter = math.exp(self._latency_random.gauss(0.0, self.latency_sigma)) if self.latency_sigma else 1.0
            await asyncio.sleep(self.latency * jitter)
        self.log.last_headers = dict(request.headers)
        denied = self._auth_error(request)
        if denied:
            return None, "", denied
        try:
            body = json.loads(await request.read())
        except ValueError:
            return None, "", _error(400, "We could not parse the JSON body of your request.", {})
        key = body_hash(body)
        self.log.received[(endpoint, key)] += 1
        self.log.times.append(time.monotonic())
        limited = self._over_limit()
        if limited:
            return body, key, limited
        fault = self._next_fault()
        if fault:
            self.log.faults[fault] += 1
        return body, key, fault

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body, key, outcome = await self._prelude(request, "chat")
        if isinstance(outcome, web.StreamResponse):
            return outcome
        assert body is not None
        refused = self._refuse_format(body.get("response_format"))
        if refused:
            return refused
        fault: str | None = outcome
        if fault and fault not in CONTENT_FAULTS and fault != "truncated":
            response = await self._fault_response(fault, request)
            assert response is not None
            return response
        content = self.handler(body)
        finish = "stop"
        if fault == "bad_schema":
            content = json.dumps({"unexpected": "field"}) if request_schema(body) else content
        elif fault == "empty":
            content = ""
        elif fault == "length":
            content, finish = content[: max(1, len(content) // 2)], "length"
        completion = {
            "id": f"chatcmpl-{key}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or self.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}],
            "usage": self._usage(body, content),
        }
        return self._answer(key, "chat", completion, fault)

    def _usage(self, body: dict[str, Any], content: str) -> dict[str, int]:
        if self.tokens is None:
            prompt, completion = len(prompt_text(body)) // 4 + 1, len(content) // 4 + 1
        else:
            prompt = 3 + sum(4 + self.tokens(str(m.get("content") or "")) for m in body.get("messages", []))
            completion = self.tokens(content)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def _answer(self, key: str, endpoint: str, payload: dict[str, Any], fault: str | None) -> web.Response:
        text = json.dumps(payload)
        if fault == "truncated":
            return web.Response(text=text[: len(text) // 2], content_type="application/json")
        if fault is None:
            self.log.answered[(endpoint, key)] += 1
        headers = self._rate_headers(int(self.rpm * self.rpm_window / 60) - len(self._window), 0.0) if self.rpm else {}
        return web.Response(text=text, content_type="application/json", headers=headers)

    def _refuse_format(self, fmt: dict[str, Any] | None) -> web.Response | None:
        if not fmt:
            return None
        if self.style == "text_only":
            return _error(400, "response_format is not supported by this server", {})
        if self.style == "llama_cpp" and fmt.get("type") == "json_schema":
            return web.Response(status=500, text="Internal Server Error")
        return None

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        body, key, outcome = await self._prelude(request, "embeddings")
        if isinstance(outcome, web.StreamResponse):
            return outcome
        assert body is not None
        fault = None if outcome in CONTENT_FAULTS else outcome
        if fault and fault != "truncated":
            response = await self._fault_response(fault, request)
            assert response is not None
            return response
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
        if not texts or not all(isinstance(t, str) for t in texts):
            return _error(400, "input must be a string or a list of strings", {})
        data = [{"object": "embedding", "index": i, "embedding": embedding(t, self.embedding_dim)}
                for i, t in enumerate(texts)]
        tokens = sum(len(t) // 4 + 1 for t in texts)
        payload = {"object": "list", "data": data, "model": body.get("model") or self.model,
                   "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
        return self._answer(key, "embeddings", payload, fault)

    async def _models(self, request: web.Request) -> web.Response:
        denied = self._auth_error(request)
        if denied:
            return denied
        return web.json_response({"object": "list", "data": [{"id": self.model, "object": "model"}]})


def _error(status: int, message: str, headers: dict[str, str]) -> web.Response:
    body = {"error": {"message": message, "type": "test_server_error", "code": status}}
    return web.json_response(body, status=status, headers=headers)


# ----- separate process (benchmarks) ------------------------------------------------------------------------------


@contextlib.contextmanager
def spawn_server_process(**options: Any) -> Iterator[str]:
    """Run the server in its own process (so it does not share the client's CPU); yields its base URL."""
    command = [sys.executable, __file__, "--options", json.dumps(options)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"test server process failed to start: {line!r}")
        yield f"http://127.0.0.1:{int(line.split()[1])}/v1"
    finally:
        process.terminate()
        process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--options", default="{}", help="JSON object of OpenAIServer keyword arguments")
    parser.add_argument("--latency", type=float)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    options = json.loads(args.options)
    if args.latency is not None:
        options["latency"] = args.latency
    server = OpenAIServer(**options)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(server.start_async(args.port))
    print(f"PORT {server.port}", flush=True)
    loop.run_forever()


if __name__ == "__main__":
    main()
