"""Language agreement by writing system: does the text's dominant script fit the record's `lang`?

What it covers: it tells Han (zh), Japanese kana, Hangul, Cyrillic, Arabic, Greek, Devanagari, Thai and Latin
apart, so a Chinese record written in English (or the reverse) is caught. It cannot tell two languages of the same
script apart (English from French); records whose `lang` it does not know are not checked.
"""

from __future__ import annotations

import unicodedata

SCRIPTS_OF_LANG: dict[str, frozenset[str]] = {
    "zh": frozenset({"han"}),
    "ja": frozenset({"han", "kana"}),
    "ko": frozenset({"hangul", "han"}),
    "ru": frozenset({"cyrillic"}),
    "uk": frozenset({"cyrillic"}),
    "bg": frozenset({"cyrillic"}),
    "ar": frozenset({"arabic"}),
    "fa": frozenset({"arabic"}),
    "el": frozenset({"greek"}),
    "hi": frozenset({"devanagari"}),
    "th": frozenset({"thai"}),
    **{code: frozenset({"latin"}) for code in (
        "en", "de", "fr", "es", "it", "pt", "nl", "sv", "da", "no", "fi", "pl", "cs", "tr", "id", "vi", "ro", "hu"
    )},
}

_WIDE_WEIGHT = 3
"""A Han, kana or Hangul character carries about as much text as three Latin letters."""


def char_script(char: str) -> str | None:
    """The writing system of one letter (None for digits, spaces, punctuation)."""
    if not char.isalpha():
        return None
    code = ord(char)
    if 0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0xF900 <= code <= 0xFAFF:
        return "han"
    if 0x3040 <= code <= 0x30FF:
        return "kana"
    if 0xAC00 <= code <= 0xD7AF or 0x1100 <= code <= 0x11FF:
        return "hangul"
    name = unicodedata.name(char, "")
    for script in ("LATIN", "CYRILLIC", "ARABIC", "GREEK", "DEVANAGARI", "THAI"):
        if name.startswith(script):
            return script.lower()
    return None


def dominant_script(text: str) -> str | None:
    """The script with the most weight in `text`, or None when it has no letters."""
    weights: dict[str, int] = {}
    for char in text:
        script = char_script(char)
        if script:
            weights[script] = weights.get(script, 0) + (_WIDE_WEIGHT if script in ("han", "kana", "hangul") else 1)
    return max(weights, key=weights.__getitem__) if weights else None


def lang_mismatch(text: str, lang: str) -> str | None:
    """Why `text` does not look like `lang`, or None when it agrees (or cannot be checked)."""
    expected = SCRIPTS_OF_LANG.get(lang.split("-")[0].lower())
    script = dominant_script(text)
    if expected is None or script is None or script in expected:
        return None
    return f"lang is {lang} but the text is mostly {script} script"
