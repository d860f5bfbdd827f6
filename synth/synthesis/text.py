"""Language-neutral text measures the checks share: tokens, characters, sentences, shingles (scripts: synth.text)."""

from __future__ import annotations

import re

from synth.text import Script, char_class

# Han and kana: one character is one token (no spaces between words).
_CJK = char_class(Script.HAN, Script.KANA)
_TOKEN = re.compile(f"[{_CJK}]|[^\\W{_CJK}]+")
_SENTENCE_END = re.compile(r"(?<=[.!?。！？；;])\s*|\n+")
_SPACE = re.compile(r"\s+")


def tokens(text: str) -> list[str]:
    """Lower-cased words, with each CJK character a token of its own."""
    return _TOKEN.findall(text.lower())


def compact(text: str) -> str:
    """Text without whitespace, lower-cased: what 'copied verbatim' compares, in any script."""
    return _SPACE.sub("", text).lower()


def char_length(text: str) -> int:
    """Length in characters with runs of whitespace counted once (comparable across scripts)."""
    return len(_SPACE.sub(" ", text).strip())


def sentences(text: str) -> list[str]:
    """Sentences split at terminal punctuation (Latin and CJK) and line breaks."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s and tokens(s)]


def shingles(text: str) -> set[str]:
    """Content features for topic overlap: words of 3+ letters and CJK character bigrams."""
    found = {t for t in tokens(text) if len(t) >= 3}
    for run in re.findall(f"[{_CJK}]+", text):
        found |= {run[i : i + 2] for i in range(len(run) - 1)} or {run}
    return found
