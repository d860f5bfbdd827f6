"""Language-neutral text measures the checks share: tokens, characters, sentences, shingles (scripts: synth.text),
and `Measured`, a text that keeps them once taken."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from synth.text import Script, char_class, dominant_script

# Han and kana: one character is one token (no spaces between words).
_CJK = char_class(Script.HAN, Script.KANA)
_TOKEN = re.compile(f"[{_CJK}]|[^\\W{_CJK}]+")
_SENTENCE_END = re.compile(r"(?<=[.!?。！？；;])\s*|\n+")


def tokens(text: str) -> list[str]:
    """Lower-cased words, with each CJK character a token of its own."""
    return _TOKEN.findall(text.lower())


def compact(text: str) -> str:
    """Text without whitespace, lower-cased: what 'copied verbatim' compares, in any script.

    `str.split()` splits at exactly the characters regex `\\s` matches, and is several times faster than `re.sub`.
    """
    return "".join(text.split()).lower()


def char_length(text: str) -> int:
    """Length in characters with runs of whitespace counted once (comparable across scripts)."""
    return len(" ".join(text.split()))


def sentences(text: str) -> list[str]:
    """Sentences split at terminal punctuation (Latin and CJK) and line breaks."""
    return [s.strip() for s in _SENTENCE_END.split(text) if _TOKEN.search(s.lower())]


def shingles(text: str) -> set[str]:
    """Content features for topic overlap: words of 3+ letters and CJK character bigrams."""
    found = {t for t in tokens(text) if len(t) >= 3}
    for run in re.findall(f"[{_CJK}]+", text):
        found |= {run[i : i + 2] for i in range(len(run) - 1)} or {run}
    return found


_T = TypeVar("_T")


class _once(Generic[_T]):
    """`functools.cached_property` without its lock and checks (Python 3.11 takes a lock on every first access):
    the value is stored in the instance, where later reads find it without calling here again."""

    def __init__(self, measure: Callable[[Any], _T]) -> None:
        self.measure = measure
        self.name = measure.__name__

    def __get__(self, instance: Any, owner: type | None = None) -> _T:
        value = instance.__dict__[self.name] = self.measure(instance)
        return value


class Measured:
    """A text with each measure taken once, on first use: a record's source field is compared with every output of
    every try, and one output goes through several checks, which would otherwise each measure it again.

    The measures are shared: callers must not change the lists.
    """

    def __init__(self, text: str) -> None:
        self.text = text

    @_once
    def tokens(self) -> list[str]:
        return tokens(self.text)

    @_once
    def compact(self) -> str:
        return compact(self.text)

    @_once
    def char_length(self) -> int:
        return char_length(self.text)

    @_once
    def sentences(self) -> list[str]:
        return sentences(self.text)

    @_once
    def compact_sentences(self) -> list[str]:
        """Each sentence as `compact` writes it."""
        return [compact(s) for s in self.sentences]

    @_once
    def script(self) -> Script | None:
        return dominant_script(self.text)

    @_once
    def shingles(self) -> set[str]:
        return shingles(self.text)


Text = str | Measured
"""A text as the checks take it."""


def measured(text: Text) -> Measured:
    """`text` as `Measured` (itself when it already is: its measures are kept)."""
    return text if isinstance(text, Measured) else Measured(text)
