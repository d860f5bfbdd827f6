"""Language of a row: the row's own column, the `--lang` flag, or a guess from the script it is written in."""

from __future__ import annotations

import re

AUTO = "auto"
_SCRIPTS = (
    (re.compile(r"[\u3040-\u30ff]"), "ja"),  # kana first: Japanese also uses Han characters
    (re.compile(r"[\uac00-\ud7af\u1100-\u11ff]"), "ko"),
    (re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf]"), "zh"),
    (re.compile(r"[\u0400-\u04ff]"), "ru"),
    (re.compile(r"[\u0600-\u06ff]"), "ar"),
)

DEFAULT_JOINERS = {
    "zh": "\n请阅读上述文章，回答下列问题：",  # QZhou-Embedding's joiner
    "en": "\nRead the passage above and answer the following question: ",
}
"""Reading comprehension: query = context + joiner + question; languages without their own joiner use `en`'s."""


def guess_lang(text: str) -> str:
    """zh / ja / ko / ru / ar by script, `en` for everything else: pass `--lang` for other Latin-script languages."""
    if text.isascii():
        return "en"
    for pattern, lang in _SCRIPTS:
        if pattern.search(text):
            return lang
    return "en"


def joiner_for(lang: str, joiners: dict[str, str]) -> str:
    return joiners.get(lang) or joiners.get(lang.split("-")[0]) or joiners["en"]
