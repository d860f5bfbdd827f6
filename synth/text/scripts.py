"""Writing systems by Unicode range, and how much of a text each one carries.

A text's weight in a script is counted in words: a run of letters is one word in scripts that put spaces between
words (Latin, Cyrillic, Hangul, ...); a Han or kana character is one word, since CJK puts no spaces between words;
in Thai, Lao, Khmer, Myanmar and Tibetan (no spaces either, words of several letters) three letters make a word.
Counting words, not letters, keeps "Python 里的 list 有什么区别" Chinese: two Latin words, seven Han characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Script(StrEnum):
    LATIN = "latin"
    GREEK = "greek"
    CYRILLIC = "cyrillic"
    ARMENIAN = "armenian"
    HEBREW = "hebrew"
    ARABIC = "arabic"
    DEVANAGARI = "devanagari"
    BENGALI = "bengali"
    GURMUKHI = "gurmukhi"
    GUJARATI = "gujarati"
    ORIYA = "oriya"
    TAMIL = "tamil"
    TELUGU = "telugu"
    KANNADA = "kannada"
    MALAYALAM = "malayalam"
    SINHALA = "sinhala"
    THAI = "thai"
    LAO = "lao"
    TIBETAN = "tibetan"
    MYANMAR = "myanmar"
    GEORGIAN = "georgian"
    ETHIOPIC = "ethiopic"
    KHMER = "khmer"
    HANGUL = "hangul"
    HAN = "han"
    KANA = "kana"
    BOPOMOFO = "bopomofo"


WORD = 3
"""Weight of one word (a run of letters, or one CJK character); a letter of Thai, Lao, ... weighs 1."""


@dataclass(frozen=True)
class ScriptRanges:
    script: Script
    ranges: tuple[tuple[int, int], ...]
    per_letter: int = 0
    """0: each run of letters weighs a word; otherwise the weight of each letter."""

    @property
    def chars(self) -> str:
        """The ranges as the inside of a regex character class."""
        return "".join(chr(low) if low == high else f"{chr(low)}-{chr(high)}" for low, high in self.ranges)


def _s(script: Script, *ranges: tuple[int, int], per_letter: int = 0) -> ScriptRanges:
    return ScriptRanges(script, ranges, per_letter)


SCRIPT_RANGES: tuple[ScriptRanges, ...] = (
    _s(Script.LATIN, (0x41, 0x5A), (0x61, 0x7A), (0xAA, 0xAA), (0xBA, 0xBA), (0xC0, 0xD6), (0xD8, 0xF6),
       (0xF8, 0x24F), (0x1E00, 0x1EFF), (0x2C60, 0x2C7F), (0xA720, 0xA7FF), (0xAB30, 0xAB6F), (0xFF21, 0xFF3A),
       (0xFF41, 0xFF5A)),
    _s(Script.GREEK, (0x370, 0x3FF), (0x1F00, 0x1FFF)),
    _s(Script.CYRILLIC, (0x400, 0x52F), (0x1C80, 0x1C8F), (0x2DE0, 0x2DFF), (0xA640, 0xA69F)),
    _s(Script.ARMENIAN, (0x531, 0x58F), (0xFB13, 0xFB17)),
    _s(Script.HEBREW, (0x591, 0x5F4), (0xFB1D, 0xFB4F)),
    _s(Script.ARABIC, (0x620, 0x64A), (0x66E, 0x6D3), (0x6FA, 0x6FF), (0x750, 0x77F), (0x8A0, 0x8FF),
       (0xFB50, 0xFDFF), (0xFE70, 0xFEFC)),
    _s(Script.DEVANAGARI, (0x900, 0x963), (0x971, 0x97F), (0xA8E0, 0xA8FF)),
    _s(Script.BENGALI, (0x980, 0x9E3), (0x9F0, 0x9FF)),
    _s(Script.GURMUKHI, (0xA00, 0xA65), (0xA70, 0xA7F)),
    _s(Script.GUJARATI, (0xA80, 0xAE3), (0xAF0, 0xAFF)),
    _s(Script.ORIYA, (0xB00, 0xB63), (0xB70, 0xB7F)),
    _s(Script.TAMIL, (0xB80, 0xBE5), (0xBF0, 0xBFF)),
    _s(Script.TELUGU, (0xC00, 0xC63), (0xC70, 0xC7F)),
    _s(Script.KANNADA, (0xC80, 0xCE3), (0xCF0, 0xCFF)),
    _s(Script.MALAYALAM, (0xD00, 0xD63), (0xD70, 0xD7F)),
    _s(Script.SINHALA, (0xD80, 0xDFF)),
    _s(Script.THAI, (0xE01, 0xE4E), per_letter=1),
    _s(Script.LAO, (0xE81, 0xECF), per_letter=1),
    _s(Script.TIBETAN, (0xF00, 0xF03), (0xF40, 0xFBC), per_letter=1),
    _s(Script.MYANMAR, (0x1000, 0x103F), (0x1050, 0x109F), per_letter=1),
    _s(Script.GEORGIAN, (0x10A0, 0x10FF), (0x1C90, 0x1CBF), (0x2D00, 0x2D2F)),
    _s(Script.ETHIOPIC, (0x1200, 0x135A), (0x1380, 0x139F), (0x2D80, 0x2DDF)),
    _s(Script.KHMER, (0x1780, 0x17D3), (0x19E0, 0x19FF), per_letter=1),
    _s(Script.HANGUL, (0x1100, 0x11FF), (0x3131, 0x318E), (0xA960, 0xA97F), (0xAC00, 0xD7AF), (0xD7B0, 0xD7FF),
       (0xFFA0, 0xFFDC)),
    _s(Script.HAN, (0x2E80, 0x2FDF), (0x3005, 0x3007), (0x3021, 0x3029), (0x3400, 0x4DBF), (0x4E00, 0x9FFF),
       (0xF900, 0xFAFF), (0x20000, 0x2FA1F), (0x30000, 0x3134F), per_letter=WORD),
    # U+30FB (katakana middle dot) is left out: Chinese writes it between the parts of a foreign name.
    _s(Script.KANA, (0x3041, 0x309F), (0x30A0, 0x30FA), (0x30FC, 0x30FF), (0x31F0, 0x31FF), (0xFF66, 0xFF9F),
       (0x1B000, 0x1B16F), per_letter=WORD),
    _s(Script.BOPOMOFO, (0x3105, 0x312F), (0x31A0, 0x31BF), per_letter=WORD),
)
"""Letters of each script by Unicode block; digits and punctuation of a block are left out where Unicode groups them."""

RANGES = {entry.script: entry for entry in SCRIPT_RANGES}


def char_class(*scripts: Script) -> str:
    """The inside of a regex character class matching the letters of `scripts`."""
    return "".join(RANGES[script].chars for script in scripts)


_PATTERNS = {entry.script: re.compile(f"[{entry.chars}]+") for entry in SCRIPT_RANGES}
"""Runs of each script's letters: a run is a word, or as many words as its letters weigh in a `per_letter` script."""
_ASCII_WORD = re.compile(r"[A-Za-z]+")
_ASCII_LETTER = re.compile(r"[A-Za-z]")
_OTHERS = tuple(entry for entry in SCRIPT_RANGES if entry.script is not Script.LATIN)
_OTHER_LETTERS = re.compile(f"[{char_class(*(entry.script for entry in _OTHERS))}]+")
_BLOCK_BITS = 7
"""Code points are looked up 128 at a time to find which scripts a text may have."""


def _scripts_by_block() -> dict[int, frozenset[Script]]:
    """Each block of code points that holds letters of a script other than Latin, with those scripts."""
    blocks: dict[int, set[Script]] = {}
    for entry in _OTHERS:
        for first, last in entry.ranges:
            for block in range(first >> _BLOCK_BITS, (last >> _BLOCK_BITS) + 1):
                blocks.setdefault(block, set()).add(entry.script)
    return {block: frozenset(scripts) for block, scripts in blocks.items()}


_BLOCK_SCRIPTS = _scripts_by_block()
_JAPANESE_KANA_SHARE = 0.1
"""A text whose Han and kana characters are at least 10% kana is Japanese (Chinese writes no kana)."""


def script_weights(text: str) -> dict[Script, int]:
    """Weight of each script present in `text`, in thirds of a word (see the module docstring).

    Han characters in a text that also has kana (at least 10% of its CJK characters) are Japanese kanji and count
    as kana, so a Japanese text is told from Chinese however many kanji it uses.
    """
    if text.isascii():  # the common case: one C-speed scan
        words = len(_ASCII_WORD.findall(text))
        return {Script.LATIN: words * WORD} if words else {}
    weights: dict[Script, int] = {}
    latin = len(_PATTERNS[Script.LATIN].findall(text))
    if latin:
        weights[Script.LATIN] = latin * WORD
    others = " ".join(_OTHER_LETTERS.findall(text))
    if not others:
        return weights
    # Only the scripts of the blocks its distinct letters fall in are counted (a few of the 26).
    letters = set(others)
    letters.discard(" ")  # between the runs
    present = frozenset().union(*(_BLOCK_SCRIPTS[ord(letter) >> _BLOCK_BITS] for letter in letters))
    for entry in _OTHERS:
        if entry.script in present:
            runs = _PATTERNS[entry.script].findall(others)
            count = sum(map(len, runs)) * entry.per_letter if entry.per_letter else len(runs) * WORD
            if count:
                weights[entry.script] = count
    return _japanese(weights)


def _japanese(weights: dict[Script, int]) -> dict[Script, int]:
    kana, han = weights.get(Script.KANA, 0), weights.get(Script.HAN, 0)
    if kana and han and kana >= _JAPANESE_KANA_SHARE * (kana + han):
        weights[Script.KANA] = kana + weights.pop(Script.HAN)
    return weights


def dominant_script(text: str) -> Script | None:
    """The script most of `text`'s words are written in, or None when it has no letters.

    A tie goes to the script that appears first ("hello world 世界" is Latin, "世界 hello world" Han).
    """
    if text.isascii():  # the common case: Latin if it has a letter at all, without counting words
        return Script.LATIN if _ASCII_LETTER.search(text) else None
    weights = script_weights(text)
    if not weights:
        return None
    best = max(weights.values())
    tied = [script for script, weight in weights.items() if weight == best]
    if len(tied) == 1:
        return tied[0]
    return min(tied, key=lambda script: _first_position(text, script))


def _first_position(text: str, script: Script) -> int:
    found = _PATTERNS[script].search(text)
    return found.start() if found else len(text)
