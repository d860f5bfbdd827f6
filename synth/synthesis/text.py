"""Language-neutral text measures the checks share: tokens, characters, sentences, scripts, shingles."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

# Han, kana and CJK compatibility ideographs: one character is one token (no spaces between words).
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002a6df"
_TOKEN = re.compile(f"[{_CJK}]|[^\\W{_CJK}]+")
_CJK_CHAR = re.compile(f"[{_CJK}]")
_SENTENCE_END = re.compile(r"(?<=[.!?。！？；;])\s*|\n+")
_SPACE = re.compile(r"\s+")

LANG_SCRIPTS: dict[str, str] = {
    "zh": "han", "ja": "han", "ko": "hangul", "ru": "cyrillic", "uk": "cyrillic", "bg": "cyrillic",
    "ar": "arabic", "fa": "arabic", "he": "hebrew", "el": "greek", "hi": "devanagari", "th": "thai",
}
"""Script a language is written in, for the language check; anything not listed is Latin."""


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


def _script(char: str) -> str | None:
    if _CJK_CHAR.match(char):
        return "han"
    if not char.isalpha():
        return None
    name = unicodedata.name(char, "")
    for script in ("LATIN", "CYRILLIC", "ARABIC", "HEBREW", "GREEK", "HANGUL", "DEVANAGARI", "THAI"):
        if name.startswith(script):
            return script.lower()
    return "other"


def dominant_script(text: str) -> str | None:
    """The script most words are written in (a CJK character counts as a word), or None without letters.

    Counting words, not letters, keeps "Python 里的 list 有什么区别" Chinese: three Latin words, seven Han characters.
    """
    counts = Counter(s for s in (_script(token[0]) for token in tokens(text)) if s)
    return counts.most_common(1)[0][0] if counts else None


def lang_script(lang: str) -> str:
    """Script of a language code such as `zh`, `zh-Hans` or `en`."""
    return LANG_SCRIPTS.get(lang.lower().split("-")[0].split("_")[0], "latin")
