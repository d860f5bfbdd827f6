"""Language agreement by writing system: does the text's dominant script fit the record's `lang`?

What it covers: it tells Han (zh), Japanese kana, Hangul, Cyrillic, Arabic, Greek, Devanagari, Thai and Latin
apart, so a Chinese record written in English (or the reverse) is caught. It cannot tell two languages of the same
script apart (English from French); records whose `lang` it does not know are not checked.
"""

from __future__ import annotations

import re

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


SCRIPT_PATTERNS: dict[str, re.Pattern[str]] = {
    "han": re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"),
    "kana": re.compile(r"[\u3040-\u30ff]"),
    "hangul": re.compile(r"[\u1100-\u11ff\uac00-\ud7af]"),
    "latin": re.compile(r"[A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u1e00-\u1eff]"),
    "cyrillic": re.compile(r"[\u0400-\u04ff]"),
    "arabic": re.compile(r"[\u0600-\u06ff]"),
    "greek": re.compile(r"[\u0370-\u03ff]"),
    "devanagari": re.compile(r"[\u0900-\u097f]"),
    "thai": re.compile(r"[\u0e00-\u0e7f]"),
}
"""Letters of each script by Unicode block (one C-speed scan per script)."""


def dominant_script(text: str) -> str | None:
    """The script with the most weight in `text`, or None when it has no letters."""
    patterns = {"latin": SCRIPT_PATTERNS["latin"]} if text.isascii() else SCRIPT_PATTERNS
    weights = {}
    for script, pattern in patterns.items():
        count = len(pattern.findall(text))
        if count:
            weights[script] = count * (_WIDE_WEIGHT if script in ("han", "kana", "hangul") else 1)
    return max(weights, key=weights.__getitem__) if weights else None


def lang_mismatch(text: str, lang: str) -> str | None:
    """Why `text` does not look like `lang`, or None when it agrees (or cannot be checked)."""
    expected = SCRIPTS_OF_LANG.get(lang.split("-")[0].lower())
    script = dominant_script(text)
    if expected is None or script is None or script in expected:
        return None
    return f"lang is {lang} but the text is mostly {script} script"
