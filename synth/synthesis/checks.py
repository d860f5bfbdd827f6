"""The checks every generated text must pass, as small pure functions returning None or a `Failure`.

Bands follow docs/method.md: a paraphrase changes more than 30% of a sentence / 20% of a paragraph and stays within
+-15% of the length; augment and hard negatives stay within +-20%; duplicates among outputs are dropped.

Each check takes a text as a string or as `Measured`: a stage that passes a record's source field as one `Measured`
(and an output as another through its checks) has each measure taken once, not once per check, output and try.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import pairwise
from typing import NamedTuple

from rapidfuzz.distance import Levenshtein

from synth.synthesis.text import Text, measured
from synth.text import lang_mismatch, scripts_of


class Failure(NamedTuple):
    """Why an output was dropped: a short rule name (counted in the summary) and a readable reason."""

    rule: str
    reason: str


def edit_distance(a: Text, b: Text) -> float:
    """Normalised token edit distance in [0, 1]: 0 identical, 1 nothing in common (CJK per character)."""
    return Levenshtein.normalized_distance(measured(a).tokens, measured(b).tokens)


def change_band(source: Text, sentence_band: float, paragraph_band: float) -> float:
    """How much of `source` a rewrite must change: the sentence band for one sentence, else the paragraph band."""
    return sentence_band if len(measured(source).sentences) <= 1 else paragraph_band


def check_changed(source: Text, output: Text, band: float) -> Failure | None:
    """The output must differ from the source by more than `band` (normalised edit distance)."""
    source, output = measured(source), measured(output)
    if source.compact == output.compact:
        return Failure("identical_to_source", "output is the source text again")
    distance = edit_distance(source, output)
    if distance <= band:
        return Failure("too_similar_to_source", f"changed {distance:.0%} of the source, needs more than {band:.0%}")
    return None


def check_length(source: Text, output: Text, tolerance: float) -> Failure | None:
    """The output's length in characters must be within +-tolerance of the source's."""
    want, got = measured(source).char_length, measured(output).char_length
    if abs(got - want) > tolerance * want:
        return Failure("length_out_of_band", f"{got} characters, source has {want} (allowed +-{tolerance:.0%})")
    return None


def check_adjacent_copy(source: Text, output: Text) -> Failure | None:
    """No two adjacent sentences of the source may appear verbatim, one after the other, in the output."""
    target = measured(output).compact
    for first, second in pairwise(measured(source).compact_sentences):
        if first + second in target:
            return Failure("copied_adjacent_sentences", "two adjacent source sentences copied verbatim")
    return None


def check_language(lang: str, output: Text, source: Text | None = None) -> Failure | None:
    """The output must be written in `lang`'s scripts: the filter's `lang_mismatch` rule itself, so an output kept
    here is never dropped there. For a language the table lacks, it must be in the script of `source` if given."""
    if scripts_of(lang) is None:
        return check_script(measured(source).script, output) if source is not None else None
    reason = lang_mismatch(measured(output).text, lang)
    return Failure("wrong_language", reason) if reason else None


def check_script(expected: str | None, output: Text) -> Failure | None:
    """The output must be written in the expected script (`lang` unknown: the source's script stands in for it)."""
    got = measured(output).script
    if expected and got != expected:
        found = f"written in {got} script" if got else "has no letters"
        return Failure("wrong_language", f"{found}, expected {expected}")
    return None


def topic_overlap(a: Text, b: Text) -> float:
    """Jaccard overlap of content words (CJK bigrams): high for a rewrite, lower for a shifted topic."""
    left, right = measured(a).shingles, measured(b).shingles
    if not left or not right:
        return 0.0
    return len(left & right) / len(left | right)


def check_topic_shift(source: Text, output: Text, max_overlap: float) -> Failure | None:
    """An augmentation must move the topic: too much shared vocabulary means it is a mere rewrite."""
    overlap = topic_overlap(source, output)
    if overlap > max_overlap:
        return Failure("no_topic_shift", f"shares {overlap:.0%} of its content words with the source "
                       f"(at most {max_overlap:.0%})")
    return None


def check_similarity_band(similarity: float, low: float, high: float) -> Failure | None:
    """Embedding similarity to the source must sit in [low, high]: above is a rewrite, below left the field."""
    if similarity > high:
        return Failure("no_topic_shift", f"embedding similarity {similarity:.2f} to the source is above {high}")
    if similarity < low:
        return Failure("off_topic", f"embedding similarity {similarity:.2f} to the source is below {low}")
    return None


def check_near_duplicate(output: Text, kept: Sequence[Text], band: float) -> Failure | None:
    """An output within `band` edit distance of one already kept is a duplicate."""
    output = measured(output)
    for other in map(measured, kept):
        if other.compact == output.compact or edit_distance(other, output) <= band:
            return Failure("near_duplicate_output", "near-identical to another output of the same record")
    return None


def check_distinct(output: Text, other: Text, band: float, rule: str, what: str) -> Failure | None:
    """Two texts that must not be near-identical (a negative and its positive, for example)."""
    output, other = measured(output), measured(other)
    if output.compact == other.compact or edit_distance(output, other) <= band:
        return Failure(rule, f"near-identical to {what}")
    return None


def check_word_count(text: Text, requested: int, tolerance: float) -> Failure | None:
    """A generated query must be near the requested length in words (CJK: characters)."""
    got = len(measured(text).tokens)
    if abs(got - requested) > max(1.0, tolerance * requested):
        return Failure("query_length_out_of_band", f"{got} words, requested {requested} (+-{tolerance:.0%})")
    return None


def check_not_copied(query: Text, source: Text, what: str = "passage", min_tokens: int = 4) -> Failure | None:
    """A query that is a verbatim span of its passage (or of the persona) teaches copying, not retrieval."""
    query = measured(query)
    if len(query.tokens) >= min_tokens and query.compact.strip(",.;:!?") in measured(source).compact:
        return Failure(f"query_copied_from_{what}", f"the query is a verbatim span of the {what}")
    return None


_MARKUP = re.compile(r"</?[A-Za-z][\w-]*(\s[^<>]*)?/?>|\{\s*\"\w+\"\s*:")


def check_no_new_markup(source: Text, output: Text) -> Failure | None:
    """HTML tags or JSON fragments the source does not have are a model's debris, not text (small models do this)."""
    found = _MARKUP.search(measured(output).text)
    if found and not _MARKUP.search(measured(source).text):
        return Failure("markup_in_output", f"contains {found.group(0)[:40]!r}, the source has no markup")
    return None


def check_nonempty(text: Text, what: str) -> Failure | None:
    if not measured(text).tokens:
        return Failure("empty_output", f"{what} is empty")
    return None
