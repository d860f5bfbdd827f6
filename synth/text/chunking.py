"""Cut a document into passages of about `size` tokens and at most `max` tokens, at the best boundary in reach.

A chunk ends, in order of preference, at a paragraph break (a blank line), at a sentence end (`.!?…` before
whitespace, or Chinese/Japanese `。！？` anywhere), and only for a sentence longer than the window at a word start (or
at any token, for text without spaces). A tail shorter than `size // 4` tokens joins the chunk before it when the
two fit in `max`. Chunks are character spans `(start, end)` of the text, trimmed of surrounding whitespace, so
`text[start:end]` is the passage; the same text and settings always give the same spans.

Tokens are counted once per document: the counter gives the character offset where each token starts, and a span
holds the tokens that start inside it (exact for the embedder's own tokenizer, whose offsets map to the text).
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

WORDS = "words"
"""The counter name of the fallback: a run of non-space characters is one token, a CJK character is one token."""

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
_CJK_CHAR = re.compile(f"[{_CJK}]")
_WORD_TOKEN = re.compile(rf"[{_CJK}]|[^\s{_CJK}]+")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t\f\v]*\n\s*")
_SENTENCE_END = re.compile(r"(?:[.!?…]+[\"'”’»)\]]*(?=\s)|[。！？]+[」』”’）】]*)\s*")

TokenStarts = Callable[[str], list[int]]
"""text -> the character offset where each of its tokens starts, ascending."""


@dataclass(frozen=True)
class ChunkSettings:
    size: int = 200
    """Target tokens per chunk."""
    max: int = 254
    """No chunk is longer: all-MiniLM-L6-v2's 256-token window less its [CLS] and [SEP]."""
    overlap: int = 0
    """Tokens a chunk repeats from the end of the one before it."""
    counter: str = WORDS
    """A tokenizer name or path (`transformers.AutoTokenizer`), or `words` for the fallback counter."""

    @property
    def min_tail(self) -> int:
        return max(1, self.size // 4)


def word_starts(text: str) -> list[int]:
    """Fallback token starts: words and CJK characters (no tokenizer needed, roughly a subword count / 1.3)."""
    return [match.start() for match in _WORD_TOKEN.finditer(text)]


@lru_cache(maxsize=4)
def token_counter(name: str) -> TokenStarts:
    """The token-start function of a counter name; a tokenizer is loaded once per process, never the model."""
    if name == WORDS:
        return word_starts
    backend = _backend_tokenizer(name)
    backend.no_truncation()  # a shipped tokenizer.json may truncate to the model's window: count the whole text

    def tokenizer_starts(text: str) -> list[int]:
        return [start for start, end in backend.encode(text, add_special_tokens=False).offsets if end > start]

    return tokenizer_starts


def _backend_tokenizer(name: str) -> Any:
    """The Rust tokenizer of a model: its `tokenizer.json` read directly when the model is a local folder (the
    `tokenizers` library alone, about 3 s quicker than importing transformers), else through `AutoTokenizer`."""
    local = Path(name) / "tokenizer.json"
    if local.is_file():
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(local))
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name).backend_tokenizer


def chunk_spans(text: str, settings: ChunkSettings) -> list[tuple[int, int]]:
    """The document's chunks as `(start, end)` character spans (see the module docstring)."""
    starts = token_counter(settings.counter)(text)
    if not starts:
        stripped = text.strip()
        return [(text.index(stripped), text.index(stripped) + len(stripped))] if stripped else []
    return _Cutter(text, starts, settings).spans()


class _Cutter:
    """Greedy cutting over token indices: a cut before token k ends a chunk at the text before token k."""

    def __init__(self, text: str, starts: list[int], settings: ChunkSettings):
        self.text, self.starts, self.settings = text, starts, settings
        self.paragraphs = self._token_breaks(_PARAGRAPH_BREAK)
        self.sentences = sorted(set(self._token_breaks(_SENTENCE_END)) | set(self.paragraphs))

    def _token_breaks(self, pattern: re.Pattern[str]) -> list[int]:
        """Token indices k such that a match of `pattern` ends exactly where token k starts."""
        breaks = []
        for match in pattern.finditer(self.text):
            k = bisect_left(self.starts, match.end())
            if 0 < k < len(self.starts) and self.starts[k] == match.end():
                breaks.append(k)
        return breaks

    def spans(self) -> list[tuple[int, int]]:
        size, limit, total = self.settings.size, self.settings.max, len(self.starts)
        spans, first = [], 0
        while True:
            cut = total if total - first <= size else self._cut(first)
            if cut < total and total - cut < self.settings.min_tail and total - first <= limit:
                cut = total
            spans.append((self.starts[first], self._end_before(cut)))
            if cut == total:
                return spans
            first = self._next_start(first, cut)

    def _cut(self, first: int) -> int:
        """Where the chunk starting at token `first` ends (a token index, at most `max` tokens on)."""
        size, limit = self.settings.size, self.settings.max
        low, target, high = first + size // 2, first + size, min(first + limit, len(self.starts))
        for breaks, after, upto in (
            (self.paragraphs, low, target),  # the last paragraph break past half the target
            (self.sentences, low, target),  # else the last sentence end past half the target
        ):
            found = _last_in(breaks, after, upto)
            if found is not None:
                return found
        beyond = _first_in(self.sentences, target, high)  # else the first sentence end before the maximum
        if beyond is not None:
            return beyond
        early = _last_in(self.sentences, first + self.settings.min_tail, low)  # else an earlier sentence end
        return early if early is not None else self._word_cut(first, target)

    def _word_cut(self, first: int, target: int) -> int:
        """The last word start at or before the target (a sentence longer than the window), else the target."""
        for k in range(target, first + self.settings.min_tail, -1):
            if self._word_start(k):
                return k
        return target

    def _word_start(self, k: int) -> bool:
        start = self.starts[k]
        before = self.text[start - 1]
        return before.isspace() or bool(_CJK_CHAR.match(before) or _CJK_CHAR.match(self.text, start))

    def _next_start(self, first: int, cut: int) -> int:
        """The next chunk's first token: the cut, moved back by the overlap to a word start (always past `first`)."""
        overlap = self.settings.overlap
        if not overlap:
            return cut
        k = max(cut - overlap, first + 1)
        while k > first + 1 and not self._word_start(k):
            k -= 1
        return k

    def _end_before(self, cut: int) -> int:
        end = self.starts[cut] if cut < len(self.starts) else len(self.text)
        while end > 0 and self.text[end - 1].isspace():
            end -= 1
        return end


def _last_in(values: list[int], after: int, upto: int) -> int | None:
    """The largest value v with after < v <= upto."""
    index = bisect_right(values, upto) - 1
    return values[index] if index >= 0 and values[index] > after else None


def _first_in(values: list[int], after: int, upto: int) -> int | None:
    """The smallest value v with after < v <= upto."""
    index = bisect_right(values, after)
    return values[index] if index < len(values) and values[index] <= upto else None
