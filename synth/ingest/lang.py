"""Language of a row: the row's own column, the `--lang` flag, or a guess from its text (see synth.text.identify)."""

from __future__ import annotations

from synth.text.identify import guess_language

AUTO = "auto"

DEFAULT_JOINERS = {
    "zh": "\n请阅读上述文章，回答下列问题：",  # QZhou-Embedding's joiner
    "en": "\nRead the passage above and answer the following question: ",
}
"""Reading comprehension: query = context + joiner + question; languages without their own joiner use `en`'s."""


def guess_lang(text: str) -> str:
    """The language the text's script points to (`en` for Latin script, or lingua's pick with the `lang` extra);
    `en` for a text without letters. Pass `--lang` to name the language instead."""
    return guess_language(text) or "en"


def joiner_for(lang: str, joiners: dict[str, str]) -> str:
    return joiners.get(lang) or joiners.get(lang.split("-")[0]) or joiners["en"]
