"""Request JSON, each piece encoded once: the journal key and the body sent share the text of the messages.

A chat request's messages (a prompt of a few kilobytes) and its output schema are most of what is encoded per
request. Encoded once in canonical form (sorted keys, compact, UTF-8), the same text hashes into the journal key and
is spliced into the body, where a naive client encodes them twice and the schema once per request.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

canonical = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str).encode
"""The canonical JSON text of a value: what journal keys hash, and what bodies are sent as."""


def key_of(*encoded: str) -> str:
    """The key of parts already in canonical JSON: the same as `request_key` of the decoded parts."""
    return hashlib.sha256(("[" + ",".join(encoded) + "]").encode("utf-8")).hexdigest()


def request_key(*parts: Any) -> str:
    """Stable hash of what decides an answer (model, messages, parameters, output schema); never the key or headers."""
    return key_of(*map(canonical, parts))


class Body(dict[str, Any]):
    """A request body that knows the canonical JSON text of some of its fields (`encoded`, by field name): those
    are spliced into `to_bytes` instead of being encoded again."""

    def __init__(self, fields: dict[str, Any], encoded: dict[str, str] | None = None):
        super().__init__(fields)
        self.encoded = encoded or {}

    def replace(self, **fields: Any) -> Body:
        """A copy with some fields changed (their known text dropped)."""
        return Body({**self, **fields}, {k: v for k, v in self.encoded.items() if k not in fields})


def to_bytes(body: dict[str, Any]) -> bytes:
    """The JSON a body is sent as (UTF-8), reusing what a `Body` already knows of itself."""
    known = body.encoded if isinstance(body, Body) else {}
    if not known:
        return canonical(body).encode("utf-8")
    fields = (f"{canonical(name)}:{known.get(name) or canonical(value)}" for name, value in body.items())
    return ("{" + ",".join(fields) + "}").encode("utf-8")
