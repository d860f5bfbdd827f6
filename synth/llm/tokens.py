"""Offline token estimates (no tokenizer download): a character heuristic, corrected by the server's `usage`, or a
model's own tokenizer when one is here (for `--estimate`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from synth.errors import ConfigError
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


def estimate_message_tokens(messages: list[dict[str, Any]], count: Callable[[str], int] = estimate_text_tokens) -> int:
    """Prompt tokens of a chat request before sending it (`count`: the tokens of one text, the heuristic unless a
    tokenizer is given)."""
    total = 3
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            total += count(content)
        elif isinstance(content, list):  # multi-part content: count the text parts
            total += sum(count(p.get("text", "")) for p in content if isinstance(p, dict))
        total += MESSAGE_OVERHEAD
    return total


def tokenizer_counter(name_or_path: str) -> Callable[[str], int]:
    """The token count of a text by a model's own tokenizer: a folder or `tokenizer.json` file, or a model name
    already in the Hugging Face cache. Nothing is downloaded: a tokenizer that is not here is a one-line error."""
    try:
        from huggingface_hub import try_to_load_from_cache
        from tokenizers import Tokenizer
    except ImportError:
        raise ConfigError("--tokenizer needs the tokenizers and huggingface-hub packages (pip install "
                          "'synth[onnx]')") from None
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        path = path / "tokenizer.json"
    elif not path.exists():
        try:
            cached = try_to_load_from_cache(name_or_path, "tokenizer.json")
        except ValueError:  # not a valid model name either
            cached = None
        path = Path(cached) if isinstance(cached, str) else path / "tokenizer.json"
    if not path.is_file():
        raise ConfigError(f"tokenizer {name_or_path!r} not found: give a folder with tokenizer.json, the file itself "
                          "or a model name in the local Hugging Face cache (nothing is downloaded)")
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # the library raises a bare Exception for a malformed file
        raise ConfigError(f"tokenizer {path} cannot be read: {exc}") from None
    tokenizer.no_padding()  # an embedding model's file pads and truncates to its window: count every token
    tokenizer.no_truncation()
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids)


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
