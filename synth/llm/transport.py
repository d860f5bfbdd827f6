"""HTTP to an OpenAI-compatible endpoint over one aiohttp session (measured fastest; see bench/bench_llm.py).

Turns every outcome into an answer, a `TransientError` (retry) or an `APIRefusal` (the server said no).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import aiohttp
from yarl import URL

from synth.llm.settings import LLMSettings, redact_url
from synth.llm.wire import to_bytes

_TRANSIENT_STATUS = {408, 409, 425, 429}


class TransientError(Exception):
    """A fault worth retrying: 429, 5xx, timeout, dropped connection, cut or garbled body."""

    def __init__(self, reason: str, status: int | None = None, headers: Mapping[str, str] | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.headers: Mapping[str, str] = headers or {}


class Unreachable(TransientError):
    """The request never reached a server (connection refused, no route, DNS): nothing was sent or charged."""


class TimedOut(TransientError):
    """No answer within the attempt's timeout: the server may be slow, not overloaded."""


def overloaded(error: TransientError) -> bool:
    """Whether a fault says the server has more than it can take: 429, 503, or a connection it dropped."""
    if isinstance(error, (TimedOut, Unreachable)):
        return False
    return error.status in (429, 503) or (error.status is None and error.reason.startswith("connection failed"))


class APIRefusal(Exception):
    """The server refused the request itself (4xx other than 429); retrying the same request cannot help."""

    def __init__(self, status: int, message: str, where: str | None = None):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.where = where
        """The endpoint that refused, without credentials."""


def redact(text: str, secret: str | None) -> str:
    """`text` with the secret replaced, for messages that echo request data back."""
    return text.replace(secret, "***") if secret else text


def error_message(raw: bytes) -> str:
    """The human part of an error body: OpenAI's error.message, FastAPI's detail, or the text itself."""
    text = raw.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text[:500] or "no message"
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:500]
        if isinstance(error, str):
            return error[:500]
        if data.get("detail"):
            return str(data["detail"])[:500]
        if data.get("message"):
            return str(data["message"])[:500]
    return text[:500]


class Transport:
    """POST/GET JSON to one endpoint; the session is bound to the event loop it was created in."""

    def __init__(self, settings: LLMSettings):
        self.base_url = settings.base_url or ""
        self.secret = settings.api_key
        self.headers = {"Content-Type": "application/json", **settings.extra_headers}
        if settings.api_key:
            self.headers["Authorization"] = f"Bearer {settings.api_key}"
        self.timeout = aiohttp.ClientTimeout(total=settings.timeout)
        self._urls: dict[str, URL] = {}
        connector = aiohttp.TCPConnector(limit=settings.concurrency, ttl_dns_cache=300, keepalive_timeout=60)
        self.session = aiohttp.ClientSession(
            connector=connector, headers=self.headers, timeout=self.timeout, skip_auto_headers=("User-Agent",)
        )

    async def request(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[Any, Mapping[str, str]]:
        """Send one request; returns (decoded JSON, response headers) or raises TransientError / APIRefusal."""
        data = to_bytes(body) if body is not None else None
        url = self._urls.get(path)
        if url is None:  # parsed once per path, not once per request
            url = self._urls[path] = URL(self.base_url + path)
        try:
            async with self.session.request(method, url, data=data) as response:
                raw = await response.read()
                status, headers = response.status, response.headers
        except TimeoutError:
            raise TimedOut(f"no answer within {self.timeout.total:g}s") from None
        except aiohttp.ClientConnectorError as exc:
            raise Unreachable(f"connection failed: {type(exc).__name__}: {redact(str(exc), self.secret)}") from None
        except (aiohttp.ClientError, asyncio.IncompleteReadError, ConnectionError) as exc:
            raise TransientError(f"connection failed: {type(exc).__name__}: {redact(str(exc), self.secret)}") from None
        if status >= 500 or status in _TRANSIENT_STATUS:
            message = redact(error_message(raw), self.secret)
            raise TransientError(f"HTTP {status}: {message}", status, headers)
        if status >= 400:
            raise APIRefusal(status, redact(error_message(raw), self.secret), redact_url(self.base_url))
        try:
            return json.loads(raw), headers
        except ValueError:
            raise TransientError(f"HTTP {status} with a cut or invalid JSON body ({len(raw)} bytes)") from None

    async def close(self) -> None:
        await self.session.close()
