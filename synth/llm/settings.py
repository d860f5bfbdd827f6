"""Resolved LLM endpoint settings: one frozen object built from stage options and the usual environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from synth.errors import ConfigError
from synth.registry import Option, defaults_of

if TYPE_CHECKING:
    from synth.llm.endpoints import Endpoint

OPENAI_URL = "https://api.openai.com/v1"
STRUCTURED_MODES = ("auto", "json_schema", "json_object_schema", "json_object", "prompt")
LLM_MODES = ("online", "batch", "offline")
"""online: requests go out now; batch: through the provider's Batch API; offline: into files for `synth batch`."""
BATCH_MODES = ("batch", "offline")
"""How a pydantic output model is asked for; `auto` tries them in this order and remembers what the server accepts."""

PANEL = "LLM endpoint"
LLM_OPTIONS: tuple[Option, ...] = (
    Option("model", str, None, "Model name.", default_text="the first model the endpoint lists", panel=PANEL),
    Option("base_url", str, None, "OpenAI-compatible endpoint, e.g. http://localhost:8000/v1; in a config file "
           "also a list of endpoints sharing the requests (see docs/llm-engine.md).",
           default_text="$OPENAI_BASE_URL; with neither, the bundled demo model when synth[llm-local] is installed",
           panel=PANEL),
    Option("api_key", str, None, "API key; never logged or written.", default_text="$OPENAI_API_KEY", panel=PANEL),
    Option("concurrency", int, 64, "Requests in flight.", min=1, panel=PANEL),
    Option("rpm", float, None, "Client-side requests-per-minute budget.", min=0.001,
           default_text="none; follows the server's headers", panel=PANEL),
    Option("tpm", float, None, "Client-side tokens-per-minute budget.", min=0.001, default_text="none", panel=PANEL),
    Option("temperature", float, 0.7, "Sampling temperature.", min=0.0, panel=PANEL),
    Option("max_tokens", int, 1024, "Max tokens per answer.", min=1, panel=PANEL),
    Option("timeout", float, 120.0, "Seconds per request attempt.", min=0.001, panel=PANEL),
    Option("max_attempts", int, 6, "Attempts per request on transient faults.", min=1, panel=PANEL),
    Option("structured", str, "auto", f"How to ask for JSON: {' | '.join(STRUCTURED_MODES)}.", panel=PANEL),
    Option("seed", int, None, "Seed sent to the model and used for sampling.", default_text="none", panel=PANEL),
    Option("endpoints", list[dict], [], "Several endpoints, [[llm.endpoints]] tables of url, key or key_env, model, "
           "weight, concurrency, rpm, tpm, batch (see docs/llm-engine.md).", default_text="base_url", config_only=True),
    Option("extra_headers", dict, {}, "HTTP headers sent with every request; never logged or written.",
           config_only=True),
    Option("extra_body", dict, {}, "Extra fields merged into every request body.", config_only=True),
    Option("max_cost", float, None, "Stop sending before this run's LLM spending (from the prices table) would pass "
           "this many USD; a rerun with a higher budget goes on.", min=0.000001, default_text="no budget",
           panel=PANEL),
    Option("prices", dict, {}, "USD per 1M tokens by model, {MODEL = {input = X, output = Y}}, for the cost.",
           config_only=True),
    Option("mode", str, "online", f"How requests are answered: {' | '.join(LLM_MODES)} (see docs/batch.md).",
           flags=("--llm-mode",), panel=PANEL),
    Option("batch_max_requests", int, 50_000, "Requests per batch file.", min=1, config_only=True),
    Option("batch_max_bytes", int, 200_000_000, "Bytes per batch file.", min=1, config_only=True),
    Option("batch_poll", float, 30.0, "Seconds between the first polls of a batch; the wait grows to 20 times that.",
           min=0.001, config_only=True),
    Option("batch_prices", dict, {}, "USD per 1M tokens by model in batch mode.",
           default_text="half of `prices`", config_only=True),
)
"""Every engine option; a default of `None` means "from the environment or the server"."""
LLM_OPTION_DEFAULTS: dict[str, Any] = defaults_of(LLM_OPTIONS)
_NUMBERS = {o.key: o.type for o in LLM_OPTIONS if o.type in (int, float)}


def redact_url(url: str | None) -> str | None:
    """The URL without user:password, so it can be logged and written to a manifest."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)


def _number(name: str, value: Any, kind: type[int] | type[float]) -> int | float:
    """A numeric option from a flag or a config file, or a one-line error naming it."""
    try:
        if isinstance(value, bool) or (kind is int and isinstance(value, float) and not value.is_integer()):
            raise ValueError
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be {'an integer' if kind is int else 'a number'}, got {value!r}") from None


@dataclass(frozen=True)
class LLMSettings:
    """Where and how to call the LLM; `api_key` is kept out of repr and of `public()`."""

    model: str | None = None
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    concurrency: int = LLM_OPTION_DEFAULTS["concurrency"]
    rpm: float | None = None
    tpm: float | None = None
    temperature: float | None = LLM_OPTION_DEFAULTS["temperature"]
    max_tokens: int | None = LLM_OPTION_DEFAULTS["max_tokens"]
    timeout: float = LLM_OPTION_DEFAULTS["timeout"]
    max_attempts: int = LLM_OPTION_DEFAULTS["max_attempts"]
    structured: str = LLM_OPTION_DEFAULTS["structured"]
    seed: int | None = None
    extra_headers: dict[str, str] = field(default_factory=dict, repr=False)
    extra_body: dict[str, Any] = field(default_factory=dict)
    max_cost: float | None = None
    prices: dict[str, dict[str, float]] = field(default_factory=dict)
    mode: str = LLM_OPTION_DEFAULTS["mode"]
    batch_max_requests: int = LLM_OPTION_DEFAULTS["batch_max_requests"]
    batch_max_bytes: int = LLM_OPTION_DEFAULTS["batch_max_bytes"]
    batch_poll: float = LLM_OPTION_DEFAULTS["batch_poll"]
    batch_prices: dict[str, dict[str, float]] = field(default_factory=dict)
    endpoints: tuple[Endpoint, ...] = field(default=(), repr=False)
    """Every endpoint requests may go to (from `base_url` or `[[llm.endpoints]]`); `base_url` is the first's."""

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> LLMSettings:
        """Settings from a stage's resolved options; unset endpoint and key come from OPENAI_BASE_URL/OPENAI_API_KEY."""
        known = {k: options[k] for k in LLM_OPTION_DEFAULTS if options.get(k) is not None}
        for name, kind in _NUMBERS.items():
            if name in known:
                known[name] = _number(name, known[name], kind)
        from synth.llm.endpoints import parse_endpoints  # it builds on this module

        api_key = known.get("api_key") or os.environ.get("OPENAI_API_KEY") or None
        base_url = known.get("base_url") or os.environ.get("OPENAI_BASE_URL") or None
        if base_url is None and api_key and not known.get("endpoints"):
            base_url = OPENAI_URL  # a key alone means the user expects OpenAI itself
        endpoints = parse_endpoints(base_url, known.get("endpoints"), api_key)
        known.update(api_key=endpoints[0].api_key if endpoints else api_key, endpoints=endpoints,
                     base_url=endpoints[0].url if endpoints else None)
        if endpoints and not known.get("model"):
            known["model"] = endpoints[0].model
        settings = cls(**{**{k: v for k, v in LLM_OPTION_DEFAULTS.items() if v is not None}, **known})
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse values that cannot work, naming the option."""
        if self.structured not in STRUCTURED_MODES:
            raise ConfigError(f"structured must be one of {', '.join(STRUCTURED_MODES)}, got {self.structured!r}")
        if self.mode not in LLM_MODES:
            raise ConfigError(f"mode must be one of {', '.join(LLM_MODES)}, got {self.mode!r}")
        for name in ("concurrency", "max_attempts", "batch_max_requests", "batch_max_bytes"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("rpm", "tpm", "timeout", "batch_poll", "max_cost"):
            value = getattr(self, name)
            if value is not None and float(value) <= 0:
                raise ConfigError(f"{name} must be positive, got {value}")
        for url in [e.url for e in self.endpoints] or ([self.base_url] if self.base_url else []):
            if urlsplit(url).scheme not in ("http", "https"):
                raise ConfigError(f"base_url must start with http:// or https://, got {redact_url(url)!r}")
        if self.mode == "batch":
            from synth.llm.endpoints import batch_endpoint

            batch_endpoint(self.endpoints)  # several endpoints: exactly one marked `batch = true`
        for table in ("prices", "batch_prices"):
            for model, price in getattr(self, table).items():
                if not isinstance(price, dict) or not set(price) <= {"input", "output"}:
                    raise ConfigError(f"{table}.{model} must be a table with keys input and output (USD per 1M tokens)")

    def for_batch(self) -> LLMSettings:
        """These settings on the endpoint batch mode uses (its URL, key and model) alone."""
        from synth.llm.endpoints import batch_endpoint

        endpoint = batch_endpoint(self.endpoints)
        if endpoint is None:
            return self
        return replace(self, base_url=endpoint.url, api_key=endpoint.api_key, model=endpoint.model or self.model,
                       endpoints=(endpoint,))

    def batch_price(self, model: str | None) -> dict[str, float] | None:
        """USD per 1M tokens for `model` in batch mode: its `batch_prices`, else half its online `prices`."""
        if model in self.batch_prices:
            return self.batch_prices[model]
        online = self.prices.get(model or "")
        return {k: v / 2 for k, v in online.items()} if online else None

    def output_config(self) -> dict[str, Any]:
        """The settings that change what the model answers: what a stage's `config()` should include."""
        return {k: getattr(self, k) for k in ("model", "temperature", "max_tokens", "seed", "extra_body")}

    def public(self) -> dict[str, Any]:
        """What may be written to a manifest or a log: everything but the key and extra headers."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("api_key", "endpoints")}
        data["extra_headers"] = sorted(self.extra_headers)
        data["base_url"] = redact_url(self.base_url)
        data["endpoints"] = [{"url": e.name, "model": e.model, "weight": e.weight, "concurrency": e.concurrency,
                              "rpm": e.rpm, "tpm": e.tpm, "batch": e.batch} for e in self.endpoints]
        return data
