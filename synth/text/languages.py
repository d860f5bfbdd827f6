"""Which scripts each language is written in, and the two questions the stages ask of it.

`lang_mismatch` is the one language check: synthesis' `wrong_language` and the filter's `lang_mismatch` both
call it, so a text one accepts the other cannot reject. It compares scripts only: it tells Chinese from Japanese,
Korean, Russian or English, not English from French. A language missing from the table is not checked.
"""

from __future__ import annotations

from functools import lru_cache

from synth.text.scripts import Script, dominant_script

S = Script
_LATIN = frozenset({S.LATIN})


def _all(script: Script, *codes: str) -> dict[str, frozenset[Script]]:
    return dict.fromkeys(codes, frozenset({script}))


LANG_SCRIPTS: dict[str, frozenset[Script]] = {
    **dict.fromkeys((
        "af", "az", "bs", "ca", "cs", "cy", "da", "de", "en", "eo", "es", "et", "eu", "fi", "fil", "fr", "ga", "gl",
        "hr", "ht", "hu", "id", "is", "it", "jv", "la", "lt", "lv", "mi", "ms", "mt", "nb", "nl", "nn", "no", "pl",
        "pt", "ro", "sk", "sl", "so", "sq", "sv", "sw", "tl", "tr", "uz", "vi", "xh", "yo", "zu",
    ), _LATIN),
    **_all(S.CYRILLIC, "be", "bg", "kk", "ky", "mk", "mn", "ru", "tg", "tt", "uk"),
    "sr": frozenset({S.CYRILLIC, S.LATIN}),  # Serbian is written in both
    **_all(S.GREEK, "el"),
    **_all(S.ARMENIAN, "hy"),
    **_all(S.HEBREW, "he", "yi"),
    **_all(S.ARABIC, "ar", "fa", "ps", "sd", "ug", "ur"),
    **_all(S.DEVANAGARI, "hi", "mr", "ne", "sa"),
    **_all(S.BENGALI, "as", "bn"),
    **_all(S.GURMUKHI, "pa"),
    **_all(S.GUJARATI, "gu"),
    **_all(S.ORIYA, "or"),
    **_all(S.TAMIL, "ta"),
    **_all(S.TELUGU, "te"),
    **_all(S.KANNADA, "kn"),
    **_all(S.MALAYALAM, "ml"),
    **_all(S.SINHALA, "si"),
    **_all(S.THAI, "th"),
    **_all(S.LAO, "lo"),
    **_all(S.TIBETAN, "bo", "dz"),
    **_all(S.MYANMAR, "my"),
    **_all(S.GEORGIAN, "ka"),
    **_all(S.ETHIOPIC, "am", "ti"),
    **_all(S.KHMER, "km"),
    "zh": frozenset({S.HAN, S.BOPOMOFO}),
    "ja": frozenset({S.HAN, S.KANA}),
    "ko": frozenset({S.HANGUL, S.HAN}),
}
"""Scripts a language is written in (base ISO 639-1 code; `zh-Hant`, `pt_BR` use their base)."""

SCRIPT_LANG: dict[Script, str] = {
    S.LATIN: "en", S.GREEK: "el", S.CYRILLIC: "ru", S.ARMENIAN: "hy", S.HEBREW: "he", S.ARABIC: "ar",
    S.DEVANAGARI: "hi", S.BENGALI: "bn", S.GURMUKHI: "pa", S.GUJARATI: "gu", S.ORIYA: "or", S.TAMIL: "ta",
    S.TELUGU: "te", S.KANNADA: "kn", S.MALAYALAM: "ml", S.SINHALA: "si", S.THAI: "th", S.LAO: "lo",
    S.TIBETAN: "bo", S.MYANMAR: "my", S.GEORGIAN: "ka", S.ETHIOPIC: "am", S.KHMER: "km", S.HANGUL: "ko",
    S.HAN: "zh", S.KANA: "ja", S.BOPOMOFO: "zh",
}
"""The language a script alone points to: the most written one where several languages share it."""


def base_lang(lang: str) -> str:
    """`zh-Hans` -> `zh`, `pt_BR` -> `pt`, `EN` -> `en`."""
    return lang.strip().lower().replace("_", "-").split("-")[0]


@lru_cache(maxsize=1024)
def scripts_of(lang: str) -> frozenset[Script] | None:
    """The scripts `lang` is written in, or None for a language the table does not know (remembered per code: the
    checks ask it for every output, of the few codes a dataset has)."""
    return LANG_SCRIPTS.get(base_lang(lang))


def lang_mismatch(text: str, lang: str) -> str | None:
    """Why `text` is not written like `lang`, or None when it is (or cannot be checked: no letters, unknown lang)."""
    expected = scripts_of(lang)
    if expected is None:
        return None
    script = dominant_script(text)
    if script is None or script in expected:
        return None
    return f"lang is {lang} but the text is mostly {script} script"


def lang_of_script(text: str) -> str | None:
    """The language `text`'s dominant script points to (see SCRIPT_LANG), or None without letters."""
    script = dominant_script(text)
    return SCRIPT_LANG[script] if script else None
