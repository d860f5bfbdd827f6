"""Several endpoints behind one engine: pick the least loaded one by weight, take a failing one out, probe it back.

An endpoint is taken out after `TAKE_OUT_AFTER` consecutive faults of its own (refused connection, timeout, 5xx)
for a backoff that doubles on each relapse; when the backoff has passed one probe request goes to it, and its first
answer takes it back. The journal key never names the endpoint, so a request answered anywhere is never sent again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from dataclasses import dataclass, field
from typing import Any

from synth.errors import ConfigError
from synth.llm import endpoint_stats
from synth.llm.ratelimit import RateLimiter, make_limiter
from synth.llm.settings import LLMSettings, redact_url
from synth.llm.structured import FormChooser
from synth.llm.transport import Transport

TAKE_OUT_AFTER = 3
"""Consecutive faults of one endpoint that take it out (one fault may be the request's, three are the server's)."""
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 60.0
ENTRY_KEYS = {"url", "key", "key_env", "model", "weight", "concurrency", "rpm", "tpm", "batch"}
_WAIT = 0.005
"""Seconds between looks for a free endpoint when every one is full or out (rare: the engine-wide limit comes first)."""


@dataclass(frozen=True)
class Endpoint:
    """One OpenAI-compatible server: where, with which key and model, its share and its own limits."""

    url: str
    api_key: str | None = field(default=None, repr=False)
    model: str | None = None
    weight: float = 1.0
    concurrency: int | None = None
    rpm: float | None = None
    tpm: float | None = None
    batch: bool = False
    """The endpoint whose Batch API `--llm-mode batch` uses, when there are several."""

    @property
    def name(self) -> str:
        """The URL without credentials: what logs, manifests and errors show."""
        return redact_url(self.url) or ""


def parse_endpoints(base_url: Any, entries: Any, api_key: str | None) -> tuple[Endpoint, ...]:
    """Endpoints from `base_url` (one URL or a list, all with `api_key`) or `[[llm.endpoints]]` entries."""
    if entries:
        if base_url and not isinstance(base_url, str):
            raise ConfigError("give either a list of base_url or [[llm.endpoints]] entries, not both")
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise ConfigError("endpoints must be a list of tables ([[llm.endpoints]] with url, key, model, ...)")
        return tuple(_entry(i, e, api_key) for i, e in enumerate(entries))
    urls = base_url if isinstance(base_url, list) else [base_url] if base_url else []
    if not all(isinstance(u, str) and u for u in urls):
        raise ConfigError("base_url must be a URL or a list of URLs")
    return tuple(Endpoint(u.rstrip("/"), api_key) for u in urls)


def public_entries(entries: Any) -> Any:
    """`[[llm.endpoints]]` as they may be written (run.toml): without keys, URLs without credentials."""
    if not isinstance(entries, list):
        return entries
    return [{k: redact_url(v) if k == "url" and isinstance(v, str) else v for k, v in e.items() if k != "key"}
            if isinstance(e, dict) else e for e in entries]


def _entry(index: int, entry: dict[str, Any], api_key: str | None) -> Endpoint:
    """One `[[llm.endpoints]]` table, checked key by key with a one-line error naming the entry."""
    where = f"endpoints[{index}]"
    unknown = sorted(set(entry) - ENTRY_KEYS)
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r} in {where} (known: {', '.join(sorted(ENTRY_KEYS))})")
    url = entry.get("url")
    if not isinstance(url, str) or not url:
        raise ConfigError(f"{where} needs a url")
    if "key" in entry and "key_env" in entry:
        raise ConfigError(f"{where}: give key or key_env, not both")
    key = entry.get("key", api_key)
    if "key_env" in entry:
        key = os.environ.get(str(entry["key_env"]))
        if not key:
            raise ConfigError(f"{where}: environment variable {entry['key_env']} (key_env) is not set")
    numbers: dict[str, Any] = {}
    for name, kind in (("weight", float), ("concurrency", int), ("rpm", float), ("tpm", float)):
        value = entry.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0 or (
                kind is int and float(value) != int(value)):
            raise ConfigError(f"{where}: {name} must be a positive {'integer' if kind is int else 'number'}, "
                              f"got {value!r}")
        numbers[name] = kind(value)
    model = entry.get("model")
    if model is not None and not isinstance(model, str):
        raise ConfigError(f"{where}: model must be a string")
    if not isinstance(entry.get("batch", False), bool):
        raise ConfigError(f"{where}: batch must be true or false, got {entry['batch']!r}")
    return Endpoint(url.rstrip("/"), key, model, **numbers, batch=entry.get("batch", False))


def batch_endpoint(endpoints: tuple[Endpoint, ...]) -> Endpoint | None:
    """The one endpoint batch mode sends its batches to: the only one, or the one marked `batch = true`; several
    without exactly one marked is a one-line error (batches are not spread: each is polled where it was sent)."""
    marked = [e for e in endpoints if e.batch]
    if len(marked) > 1:
        raise ConfigError(f"batch = true on {len(marked)} endpoints ({', '.join(e.name for e in marked)}): batch "
                          "mode sends its batches to one endpoint, mark only that one")
    if marked or len(endpoints) < 2:
        return marked[0] if marked else (endpoints[0] if endpoints else None)
    raise ConfigError(f"--llm-mode batch with {len(endpoints)} endpoints: mark the one whose Batch API to use with "
                      "batch = true in its [[llm.endpoints]] entry (the others are not used in batch mode)")


class EndpointState:
    """One endpoint's connections, budget, health and counters inside an engine."""

    def __init__(self, endpoint: Endpoint, settings: LLMSettings, model: str | None):
        self.endpoint = endpoint
        self.model = endpoint.model or model
        self.limiter: RateLimiter = make_limiter(endpoint.rpm or settings.rpm, endpoint.tpm or settings.tpm,
                                                 f"{endpoint.name}|{self.model or ''}")
        self.settings = dataclasses.replace(settings, base_url=endpoint.url, api_key=endpoint.api_key,
                                            concurrency=endpoint.concurrency or settings.concurrency)
        self.transports: dict[asyncio.AbstractEventLoop, Transport] = {}
        self.outstanding = 0
        self.faults = 0  # consecutive
        self.out_until = 0.0
        self.backoff = 0.0
        self.probing = False
        self.requests = 0
        self.failures = 0
        self.taken_out = 0
        self.cost_usd = 0.0
        self.latency: dict[str, int] = {}  # a bounded histogram (`endpoint_stats`)
        self.forms: FormChooser | None = None
        """The structured-output form this endpoint accepts (the engine makes it on first use)."""

    def transport(self) -> Transport:
        loop = asyncio.get_running_loop()
        transport = self.transports.get(loop)
        if transport is None:
            transport = self.transports[loop] = Transport(self.settings)
        return transport

    def available(self, now: float) -> bool:
        """Whether a request may go here now: in service and below its own concurrency, or due for its probe."""
        if self.out_until:
            return now >= self.out_until and not self.probing
        return self.endpoint.concurrency is None or self.outstanding < self.endpoint.concurrency

    def load(self) -> float:
        return self.outstanding / self.endpoint.weight

    def usage(self) -> endpoint_stats.Usage:
        """Requests, failures, take-outs, cost and the latency histogram, as they fold across engines."""
        return {"requests": self.requests, "failures": self.failures, "taken_out": self.taken_out,
                "cost_usd": self.cost_usd, "latency": dict(self.latency)}


class EndpointPool:
    """Chooses the endpoint of each attempt and keeps each endpoint's health."""

    def __init__(self, settings: LLMSettings, model: str | None):
        endpoints = settings.endpoints or (Endpoint(settings.base_url or "", settings.api_key),)
        self.states = [EndpointState(e, settings, model) for e in endpoints]
        self.batch = next((s for s in self.states if s.endpoint.batch), self.states[0])
        """The endpoint whose model and structured-output form batch files are written for."""

    async def acquire(self, tried: set[int]) -> EndpointState:
        """The available endpoint with the fewest outstanding requests for its weight, preferring ones not yet
        tried by this request; waits while every endpoint is full or out."""
        while True:
            now = time.monotonic()
            ready = [s for s in self.states if s.available(now)]
            fresh = [s for s in ready if id(s) not in tried] or ready
            if fresh:
                state = min(fresh, key=EndpointState.load)
                if state.out_until:
                    state.probing = True
                state.outstanding += 1
                state.requests += 1
                return state
            soonest = min((s.out_until for s in self.states if s.out_until and not s.probing), default=0.0)
            await asyncio.sleep(max(_WAIT, min(soonest - now, 1.0)) if soonest else _WAIT)

    def finished(self, state: EndpointState, seconds: float) -> None:
        """An answer (or a refusal: the server is up): the endpoint is healthy, and back if it was out."""
        state.outstanding -= 1
        key = endpoint_stats.bucket(seconds)
        state.latency[key] = state.latency.get(key, 0) + 1
        state.faults = 0
        state.out_until = state.backoff = 0.0
        state.probing = False

    def failed(self, state: EndpointState) -> None:
        """A fault of the endpoint itself; enough in a row (or a failed probe) take it out for a growing backoff.
        A lone endpoint is never taken out: there is nowhere else to go, and its retries already back off."""
        state.outstanding -= 1
        state.failures += 1
        state.faults += 1
        if len(self.states) > 1 and (state.probing or (not state.out_until and state.faults >= TAKE_OUT_AFTER)):
            state.backoff = min(BACKOFF_MAX, state.backoff * 2 if state.backoff else BACKOFF_FIRST)
            state.out_until = time.monotonic() + state.backoff
            state.probing = False
            state.taken_out += 1

    def others_available(self, state: EndpointState) -> bool:
        """Whether another endpoint could take a request now (then a fault is failed over without waiting)."""
        now = time.monotonic()
        return any(s is not state and (not s.out_until or now >= s.out_until) for s in self.states)

    def usage(self) -> dict[str, endpoint_stats.Usage]:
        """Each endpoint's usage, by URL without credentials."""
        return {s.endpoint.name: s.usage() for s in self.states}

    async def close(self) -> None:
        """Close this loop's sessions of every endpoint."""
        loop = asyncio.get_running_loop()
        for state in self.states:
            transport = state.transports.pop(loop, None)
            if transport:
                await transport.close()
