"""Scripts and languages of text, for every stage: one set of Unicode ranges, one language table, one check.

Layer: imports nothing of synth, so ingest, synthesis, filtering and the LLM engine can all use it.
"""

from synth.text.languages import LANG_SCRIPTS, SCRIPT_LANG, base_lang, lang_mismatch, lang_of_script, scripts_of
from synth.text.scripts import Script, char_class, dominant_script, script_weights

__all__ = [
    "LANG_SCRIPTS",
    "SCRIPT_LANG",
    "Script",
    "base_lang",
    "char_class",
    "dominant_script",
    "lang_mismatch",
    "lang_of_script",
    "script_weights",
    "scripts_of",
]
