"""Guess a text's language: its script, then, where several languages share that script, lingua if installed.

The script table alone names one language per script (every Latin-script text is `en`). With the `lang` extra
(`pip install 'synth[lang]'`, lingua-language-detector, ~100 MB with its models) a Latin, Cyrillic, Arabic or
Devanagari text is told apart among the languages of that script synth knows (German from English, Ukrainian from
Russian). Candidates stay within the dominant script, so English words in a Korean text cannot make it English.
Models load on first use (about 5 s and 250-450 MB per process for the Latin-script languages).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from synth.text.languages import LANG_SCRIPTS, SCRIPT_LANG
from synth.text.scripts import Script, dominant_script

SAMPLE_CHARS = 1000
"""lingua reads at most this much of a text: past a paragraph it is already right 99% of the time, and slower."""


def guess_language(text: str) -> str | None:
    """The language code `text` is most likely in, or None when it has no letters."""
    script = dominant_script(text)
    if script is None:
        return None
    detector = _detector(script)
    if detector is not None:
        found = detector.detect_language_of(text[:SAMPLE_CHARS])
        if found is not None:
            return found.iso_code_639_1.name.lower()
    return SCRIPT_LANG[script]


@cache
def _detector(script: Script) -> Any:
    """A lingua detector over the table's languages written in `script`; None without lingua or a choice to make."""
    try:
        from lingua import IsoCode639_1, LanguageDetectorBuilder
    except ImportError:
        return None
    codes = [getattr(IsoCode639_1, lang.upper()) for lang, scripts in LANG_SCRIPTS.items()
             if script in scripts and hasattr(IsoCode639_1, lang.upper())]
    return LanguageDetectorBuilder.from_iso_codes_639_1(*codes).build() if len(codes) > 1 else None
