"""Offline token estimates (no tokenizer download): a character heuristic, corrected by the server's `usage`."""

from __future__ import annotations

import re
from typing import Any

from synth.text import Script, char_class

_WIDE = re.compile(
    f"[{char_class(Script.HAN, Script.KANA, Script.BOPOMOFO, Script.HANGUL)}\u3000-\u303f\u3200-\u33ff\uff00-\uffef]"
)
"""CJK letters, CJK punctuation and full-width forms: about one token per character."""
MESSAGE_OVERHEAD = 4
"""Tokens a chat template adds around each message (role markers), as OpenAI documents for its models."""


def estimate_text_tokens(text: str) -> int:
    """About 4 ASCII characters per token, 1 token per CJK character, 2.5 characters for other scripts."""
    if text.isascii():
        return (len(text) + 3) // 4
    cjk = len(_WIDE.findall(text))
    ascii_chars = len(text.encode("ascii", "ignore"))
    other = len(text) - cjk - ascii_chars
    return int(ascii_chars / 4 + cjk + other / 2.5) + 1


def estimate_message_tokens(messages: list[dict[str, Any]]) -> int:
    """Prompt tokens of a chat request before sending it."""
    total = 3
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            total += estimate_text_tokens(content)
        elif isinstance(content, list):  # multi-part content: count the text parts
            total += sum(estimate_text_tokens(p.get("text", "")) for p in content if isinstance(p, dict))
        total += MESSAGE_OVERHEAD
    return total


class TokenEstimator:
    """The heuristic scaled by how far it was off on answered requests (a running ratio of actual to estimated)."""

    def __init__(self) -> None:
        self.estimated = 0
        self.actual = 0

    @property
    def ratio(self) -> float:
        # Until enough real usage is seen, trust the heuristic; clamp so one odd answer cannot swing the budget.
        if self.estimated < 200:
            return 1.0
        return min(4.0, max(0.25, self.actual / self.estimated))

    def scaled(self, raw_estimate: int) -> int:
        """The heuristic estimate corrected by what the server reported so far."""
        return max(1, round(raw_estimate * self.ratio))

    def observe(self, raw_estimate: int, actual: int) -> None:
        """Learn from a server's `usage.prompt_tokens` for a prompt whose raw estimate was `raw_estimate`."""
        if actual > 0 and raw_estimate > 0:
            self.estimated += raw_estimate
            self.actual += actual
