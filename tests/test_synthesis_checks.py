"""The check functions of the synthesis stages, one behaviour at a time."""

from __future__ import annotations

import itertools
import re

import pytest

from synth.synthesis import checks
from synth.synthesis.text import _SENTENCE_END, Measured, char_length, compact, sentences, tokens

SENTENCE = "The quick brown fox jumps over the lazy dog near the river bank."
PARAGRAPH = ("Tides are caused by the Moon. The Sun adds a smaller pull. "
             "Spring tides happen when both align. Neap tides happen at right angles.")


def test_tokens_split_cjk_per_character_and_words_per_word():
    assert tokens("Hello, 世界 world!") == ["hello", "世", "界", "world"]
    assert sentences("一句话。第二句！Third one? fourth") == ["一句话。", "第二句！", "Third one?", "fourth"]


def test_edit_distance_bounds():
    assert checks.edit_distance(SENTENCE, SENTENCE) == 0
    assert checks.edit_distance("alpha beta", "gamma delta") == 1
    assert checks.edit_distance("长城很长", "长城很高") == pytest.approx(0.25)


def test_band_depends_on_sentence_or_paragraph():
    assert checks.change_band(SENTENCE, 0.3, 0.2) == 0.3
    assert checks.change_band(PARAGRAPH, 0.3, 0.2) == 0.2


def test_identical_and_near_identical_rewrites_are_rejected():
    assert checks.check_changed(SENTENCE, "the quick  brown fox jumps over the lazy dog near the river bank.",
                                0.3).rule == "identical_to_source"
    one_word = SENTENCE.replace("quick", "fast").replace("lazy", "idle")  # 2 of 13 words: 15% changed
    failure = checks.check_changed(SENTENCE, one_word, 0.3)
    assert failure.rule == "too_similar_to_source" and "needs more than 30%" in failure.reason
    assert checks.check_changed(SENTENCE, "A speedy russet fox leaps above a sleepy hound by the stream.", 0.3) is None


def test_length_band():
    source = "x" * 100
    assert checks.check_length(source, "y" * 115, 0.15) is None
    assert checks.check_length(source, "y" * 85, 0.15) is None
    assert checks.check_length(source, "y" * 116, 0.15).rule == "length_out_of_band"
    assert checks.check_length(source, "y" * 84, 0.15).rule == "length_out_of_band"


def test_two_adjacent_sentences_copied_is_rejected_one_is_not():
    copied = "Tides are caused by the Moon.  The Sun adds a smaller pull. Something else entirely here."
    assert checks.check_adjacent_copy(PARAGRAPH, copied).rule == "copied_adjacent_sentences"
    one = "Tides are caused by the Moon. A weaker solar force adds to it. Alignment makes spring tides."
    assert checks.check_adjacent_copy(PARAGRAPH, one) is None
    chinese = checks.check_adjacent_copy("第一句。第二句。第三句。", "开头。第一句。 第二句。")
    assert chinese.rule == "copied_adjacent_sentences"


def test_near_duplicates_among_outputs():
    kept = ["A speedy russet fox leaps above a sleepy hound by the stream."]
    assert checks.check_near_duplicate("A speedy russet fox leaps above a sleepy hound by the river.", kept,
                                       0.2).rule == "near_duplicate_output"
    assert checks.check_near_duplicate("Near the water, an idle dog is jumped over by a fox.", kept, 0.2) is None


def test_topic_shift_rejects_a_rewrite_and_accepts_a_new_topic():
    source = "Ocean tides are caused mainly by the gravitational pull of the Moon on the oceans."
    rewrite = "The gravitational pull of the Moon on the oceans is mainly what causes ocean tides."
    shifted = "Storm surges happen when strong winds push seawater onto low coastal land during hurricanes."
    assert checks.check_topic_shift(source, rewrite, 0.5).rule == "no_topic_shift"
    assert checks.check_topic_shift(source, shifted, 0.5) is None
    chinese = checks.check_topic_shift("长城的修建始于春秋战国时期", "长城修建始于春秋战国的时期", 0.5)
    assert chinese.rule == "no_topic_shift"


def test_similarity_band():
    assert checks.check_similarity_band(0.95, 0.3, 0.9).rule == "no_topic_shift"
    assert checks.check_similarity_band(0.1, 0.3, 0.9).rule == "off_topic"
    assert checks.check_similarity_band(0.6, 0.3, 0.9) is None


def test_script_check_is_a_language_check():
    assert checks.check_script("latin", "为什么天空是蓝色的？").rule == "wrong_language"
    assert checks.check_script("han", "为什么 sky 是蓝色的？") is None
    assert checks.check_script("latin", "12345").reason == "has no letters, expected latin"
    assert checks.check_script(None, "12345") is None  # a source without letters: nothing to compare with


def test_query_checks():
    assert checks.check_word_count("one two three four five", 5, 0.5) is None
    assert checks.check_word_count("one two three four five six seven eight", 5, 0.5).rule == \
        "query_length_out_of_band"
    assert checks.check_not_copied("caused mainly by the gravitational pull", "Tides are caused mainly by the "
                                   "gravitational pull of the Moon.").rule == "query_copied_from_passage"
    assert checks.check_not_copied("what pulls the tides", "Tides are caused by the Moon.") is None
    assert checks.check_not_copied("A lawyer specialising in contracts,", "A lawyer specialising in contracts and IP",
                                   "persona").rule == "query_copied_from_persona"
    assert checks.check_nonempty("  ?! ", "query").rule == "empty_output"


def test_markup_a_source_does_not_have_is_debris():
    assert checks.check_no_new_markup("Boil the egg.", "<script>alert('egg')</script>").rule == "markup_in_output"
    assert checks.check_no_new_markup("Boil the egg.", '{"query": "egg"}').rule == "markup_in_output"
    assert checks.check_no_new_markup("Use <b>bold</b> here.", "Here, <b>bold</b> is used.") is None
    assert checks.check_no_new_markup("If a < b and c > d.", "When c > d and a < b.") is None


# Texts the measures and checks must treat exactly as before they were sped up: English, Chinese, Japanese, mixed,
# markup, every kind of whitespace, empty and letterless strings.
VARIED = [
    SENTENCE, PARAGRAPH, "", " ", "\n\n", "  ?! ", "12345", "第一句。第二句！Third one? fourth",
    "长城的修建始于春秋战国时期，秦朝统一后连接成万里长城。现存的大部分城墙建于明朝。",
    "東京は日本の首都です。人口が多いです。", "Python 里的 <b>list</b> 和 tuple 有什么区别？\n\nA list is mutable.",
    '{"query": "egg"} then text.', "\u3000全角\u3000空格\u3000", "a\u00a0b\u2028c\u2029d\x1ce\x85f",
    "İstanbul ΣΑΣ Straße",
    "Tides are caused by the Moon.  The Sun adds a smaller pull. Something else entirely here.",
]
EVERY_CHARACTER = "".join(map(chr, range(0x110000)))


def test_measures_give_what_their_regex_definitions_gave():
    # The definitions these measures had before `str.split` replaced `re.sub(r"\s+", ...)` and a token search
    # replaced a token list: the split characters are exactly the ones `\s` matches, for every code point.
    space = re.compile(r"\s+")
    for text in [*VARIED, EVERY_CHARACTER]:
        assert compact(text) == space.sub("", text).lower()
        assert char_length(text) == len(space.sub(" ", text).strip())
        assert sentences(text) == [s.strip() for s in _SENTENCE_END.split(text) if s and tokens(s)]


PAIR_CHECKS = [
    lambda source, output: checks.check_nonempty(output, "field"),
    lambda source, output: checks.check_no_new_markup(source, output),
    *(lambda source, output, lang=lang: checks.check_language(lang, output, source)
      for lang in ("en", "zh", "ja", "xx")),
    lambda source, output: checks.check_changed(source, output, checks.change_band(source, 0.3, 0.2)),
    lambda source, output: checks.edit_distance(source, output),
    lambda source, output: checks.check_length(source, output, 0.15),
    lambda source, output: checks.check_adjacent_copy(source, output),
    lambda source, output: checks.check_near_duplicate(output, [source], checks.change_band(output, 0.3, 0.2)),
    lambda source, output: checks.check_distinct(output, source, 0.2, "negative_equals_positive", "the positive"),
    lambda source, output: checks.check_not_copied(output, source),
    lambda source, output: checks.check_word_count(output, 5, 0.5),
    lambda source, output: checks.check_script("han", output),
]


def test_measured_texts_give_the_checks_the_same_answers_as_strings():
    # A stage hands the checks one `Measured` per source field and per output, reused across checks and outputs:
    # every rule, reason and measure must be what the plain strings give.
    sources = {text: Measured(text) for text in VARIED}
    for source, output in itertools.product(VARIED, VARIED):
        measured_output = Measured(output)
        for check in PAIR_CHECKS:
            assert check(sources[source], measured_output) == check(source, output)
