"""The checks every generated text must pass, as small pure functions returning None or a `Failure`.

Bands follow docs/method.md: a paraphrase changes more than 30% of a sentence / 20% of a paragraph and stays within
+-15% of the length; augment and hard negatives stay within +-20%; duplicates among outputs are dropped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import pairwise
from typing import NamedTuple

from rapidfuzz.distance import Levenshtein

from synth.synthesis.text import char_length, compact, sentences, shingles, tokens
from synth.text import dominant_script, lang_mismatch, scripts_of


class Failure(NamedTuple):
    """Why an output was dropped: a short rule name (counted in the summary) and a readable reason."""

    rule: str
    reason: str


def edit_distance(a: str, b: str) -> float:
    """Normalised token edit distance in [0, 1]: 0 identical, 1 nothing in common (CJK per character)."""
    return Levenshtein.normalized_distance(tokens(a), tokens(b))


def change_band(source: str, sentence_band: float, paragraph_band: float) -> float:
    """How much of `source` a rewrite must change: the sentence band for one sentence, else the paragraph band."""
    return sentence_band if len(sentences(source)) <= 1 else paragraph_band


def check_changed(source: str, output: str, band: float) -> Failure | None:
    """The output must differ from the source by more than `band` (normalised edit distance)."""
    if compact(source) == compact(output):
        return Failure("identical_to_source", "output is the source text again")
    distance = edit_distance(source, output)
    if distance <= band:
        return Failure("too_similar_to_source", f"changed {distance:.0%} of the source, needs more than {band:.0%}")
    return None


def check_length(source: str, output: str, tolerance: float) -> Failure | None:
    """The output's length in characters must be within +-tolerance of the source's."""
    want, got = char_length(source), char_length(output)
    if abs(got - want) > tolerance * want:
        return Failure("length_out_of_band", f"{got} characters, source has {want} (allowed +-{tolerance:.0%})")
    return None


def check_adjacent_copy(source: str, output: str) -> Failure | None:
    """No two adjacent sentences of the source may appear verbatim, one after the other, in the output."""
    parts = [compact(s) for s in sentences(source)]
    target = compact(output)
    for first, second in pairwise(parts):
        if first + second in target:
            return Failure("copied_adjacent_sentences", "two adjacent source sentences copied verbatim")
    return None


def check_language(lang: str, output: str, source: str | None = None) -> Failure | None:
    """The output must be written in `lang`'s scripts: the filter's `lang_mismatch` rule itself, so an output kept
    here is never dropped there. For a language the table lacks, it must be in the script of `source` if given."""
    if scripts_of(lang) is None:
        return check_script(dominant_script(source), output) if source is not None else None
    reason = lang_mismatch(output, lang)
    return Failure("wrong_language", reason) if reason else None


def check_script(expected: str | None, output: str) -> Failure | None:
    """The output must be written in the expected script (`lang` unknown: the source's script stands in for it)."""
    got = dominant_script(output)
    if expected and got != expected:
        found = f"written in {got} script" if got else "has no letters"
        return Failure("wrong_language", f"{found}, expected {expected}")
    return None


def topic_overlap(a: str, b: str) -> float:
    """Jaccard overlap of content words (CJK bigrams): high for a rewrite, lower for a shifted topic."""
    left, right = shingles(a), shingles(b)
    if not left or not right:
        return 0.0
    return len(left & right) / len(left | right)


def check_topic_shift(source: str, output: str, max_overlap: float) -> Failure | None:
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


def check_near_duplicate(output: str, kept: Sequence[str], band: float) -> Failure | None:
    """An output within `band` edit distance of one already kept is a duplicate."""
    for other in kept:
        if compact(other) == compact(output) or edit_distance(other, output) <= band:
            return Failure("near_duplicate_output", "near-identical to another output of the same record")
    return None


def check_distinct(output: str, other: str, band: float, rule: str, what: str) -> Failure | None:
    """Two texts that must not be near-identical (a negative and its positive, for example)."""
    if compact(output) == compact(other) or edit_distance(output, other) <= band:
        return Failure(rule, f"near-identical to {what}")
    return None


def check_word_count(text: str, requested: int, tolerance: float) -> Failure | None:
    """A generated query must be near the requested length in words (CJK: characters)."""
    got = len(tokens(text))
    if abs(got - requested) > max(1.0, tolerance * requested):
        return Failure("query_length_out_of_band", f"{got} words, requested {requested} (+-{tolerance:.0%})")
    return None


def check_not_copied(query: str, source: str, what: str = "passage", min_tokens: int = 4) -> Failure | None:
    """A query that is a verbatim span of its passage (or of the persona) teaches copying, not retrieval."""
    if len(tokens(query)) >= min_tokens and compact(query).strip(",.;:!?") in compact(source):
        return Failure(f"query_copied_from_{what}", f"the query is a verbatim span of the {what}")
    return None


_MARKUP = re.compile(r"</?[A-Za-z][\w-]*(\s[^<>]*)?/?>|\{\s*\"\w+\"\s*:")


def check_no_new_markup(source: str, output: str) -> Failure | None:
    """HTML tags or JSON fragments the source does not have are a model's debris, not text (small models do this)."""
    found = _MARKUP.search(output)
    if found and not _MARKUP.search(source):
        return Failure("markup_in_output", f"contains {found.group(0)[:40]!r}, the source has no markup")
    return None


def check_nonempty(text: str, what: str) -> Failure | None:
    if not tokens(text):
        return Failure("empty_output", f"{what} is empty")
    return None
