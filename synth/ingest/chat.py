"""Chat transcripts to (question, answer) pairs: a user turn and the assistant turn right after it."""

from __future__ import annotations

import itertools
import json
from typing import Any

from synth.ingest.values import Rejected, present

USER_ROLES = {"user", "human"}
ASSISTANT_ROLES = {"assistant", "gpt", "bot", "model"}


def _turn(field: str, message: Any) -> tuple[str, str]:
    """(role, content) of an OpenAI-style {role, content} or ShareGPT-style {from, value} message."""
    if not isinstance(message, dict):
        raise Rejected("wrong_type", f"{field}: every message must be an object, got {type(message).__name__}")
    role = message.get("role", message.get("from"))
    content = message.get("content", message.get("value"))
    if not isinstance(role, str) or not isinstance(content, str):
        raise Rejected("wrong_type", f"{field}: a message needs text role/content (or from/value)")
    return role.strip().lower(), content


def messages(field: str, value: Any) -> list[tuple[str, str]]:
    """The transcript as (role, content) turns; CSV and TSV carry it as JSON text."""
    value = present(field, value)
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise Rejected("wrong_type", f"{field}: expected a list of messages, got text that is not JSON") from exc
    if not isinstance(value, list):
        raise Rejected("wrong_type", f"{field}: expected a list of messages, got {type(value).__name__}")
    return [_turn(field, message) for message in value]


def qa_pairs(turns: list[tuple[str, str]], all_turns: bool) -> list[tuple[str, str]]:
    """(user, assistant) pairs in order; only the first unless `all_turns` (later turns often lean on earlier ones)."""
    pairs = []
    for (role, content), (next_role, answer) in itertools.pairwise(turns):
        if role in USER_ROLES and next_role in ASSISTANT_ROLES and content.strip() and answer.strip():
            pairs.append((content, answer))
            if not all_turns:
                break
    if not pairs:
        raise Rejected("no_qa_turn", "messages: no non-empty user turn followed by an assistant turn")
    return pairs
