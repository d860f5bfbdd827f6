"""Each filter rule as a pure function, on hand-made values."""

from __future__ import annotations

import pytest

from synth.errors import ConfigError
from synth.filtering.duplicates import exact_key
from synth.filtering.minhash import NearDuplicateIndex, normalise
from synth.filtering.negative_rules import false_negative, over_relative_margin
from synth.filtering.options import RULE_DEFAULTS, check_rule_options
from synth.filtering.record_rules import language_violation, length_violation, too_long
from synth.filtering.settings import parse_setting_flags, setting_for
from synth.filtering.thresholds import below_threshold, check_threshold, resolve_threshold
from synth.text import lang_mismatch
from tests.pipeline_fixtures import retrieval, sts


def test_setting_for_picks_the_most_specific_key():
    value = {"retrieval.querygen": 0.8, "querygen": 0.75, "retrieval": 0.6, "default": 0.7}
    assert setting_for(value, "retrieval", "querygen") == 0.8
    assert setting_for(value, "sts", "querygen") == 0.75
    assert setting_for(value, "retrieval", "source") == 0.6
    assert setting_for(value, "cls", "source") == 0.7
    assert setting_for({"querygen": 0.7}, "retrieval", "source") is None
    assert setting_for("off", "retrieval", "source") is None
    assert setting_for(0, "retrieval", "source") == 0  # a margin of zero is a real margin


def test_rule_flags_parse_into_settings():
    assert parse_setting_flags(["0.7"], "--min-score") == 0.7
    assert parse_setting_flags(["0.7", "source=p10", "retrieval.querygen=off"], "--min-score") == {
        "default": 0.7, "source": "p10", "retrieval.querygen": "off"}
    assert parse_setting_flags(["false"], "--check-lang") is False
    assert parse_setting_flags(None, "--min-score") is None
    with pytest.raises(ConfigError, match="--min-score"):
        parse_setting_flags(["source="], "--min-score")


def test_bad_rule_options_name_the_option():
    with pytest.raises(ConfigError, match="min_score"):
        check_rule_options({**RULE_DEFAULTS, "min_score": {"querygen": "p200"}})
    with pytest.raises(ConfigError, match="dedup"):
        check_rule_options({**RULE_DEFAULTS, "dedup": "fuzzy"})
    with pytest.raises(ConfigError, match="max_query_tokens"):
        check_rule_options({**RULE_DEFAULTS, "max_query_tokens": -3})
    assert check_rule_options({**RULE_DEFAULTS, "dedup_on": "query,pair"})["dedup_on"] == ["query", "pair"]


def test_threshold_fixed_or_percentile():
    check_threshold(0.7)
    check_threshold("p20")
    for bad in (1.5, "p101", "high", True):
        with pytest.raises(ValueError):
            check_threshold(bad)
    scores = [0.1 * i for i in range(11)]
    assert resolve_threshold(0.7, scores) == 0.7
    assert resolve_threshold("p50", scores) == pytest.approx(0.5)
    assert below_threshold(0.69, 0.7).startswith("query-positive cosine 0.6900 < 0.7000")
    assert below_threshold(0.7, 0.7) is None
    assert below_threshold(None, 0.7) == "no query-positive score"


def test_false_negative_rule_is_qwen3_mask():
    assert false_negative(0.81, 0.7, 0.1) is not None
    assert false_negative(0.8, 0.7, 0.1) is None
    assert false_negative(0.5, None, 0.1) is None


def test_relative_margin_for_llm_negatives():
    assert over_relative_margin(0.67, 0.7, 0.05) is not None  # not below 0.7 x 0.95 = 0.665
    assert over_relative_margin(0.66, 0.7, 0.05) is None
    assert over_relative_margin(-0.205, -0.2, 0.05) is not None  # sign-safe: must be below -0.2 - 0.01
    assert over_relative_margin(-0.3, -0.2, 0.05) is None


def test_length_bounds_in_estimated_tokens():
    assert too_long("word " * 100, 256) is None
    assert "estimated tokens > 10" in too_long("word " * 100, 10)
    row = retrieval("short query", "a passage " * 10)
    assert length_violation(row, 256, 1536) is None
    assert length_violation(row, 1, 1536).startswith("query:")
    assert length_violation(row, 256, 5).startswith("positive:")
    assert too_long("中" * 300, 256) is not None  # one token per CJK character


def test_language_agreement_by_script():
    assert lang_mismatch("这是一个中文句子", "zh") is None
    assert lang_mismatch("This is English", "zh") is not None
    assert lang_mismatch("这是一个中文句子", "en") is not None
    assert lang_mismatch("Ceci est français", "en") is None  # same script: not told apart
    assert lang_mismatch("Привет", "xx") is None  # unknown language: not checked
    assert lang_mismatch("12345", "zh") is None  # no letters: not checked
    assert language_violation(sts("一个句子", "another sentence", 0.5, lang="zh")).startswith("text_b:")


def test_exact_duplicates_ignore_case_width_and_punctuation():
    assert normalise("  Hello,   WORLD!! ") == "hello world"
    assert exact_key("What is Debian?", "An OS") == exact_key("what is debian", "an os.")
    assert exact_key("ａｂｃ") == exact_key("abc")  # full-width folds to ASCII
    assert exact_key("a", "b c") != exact_key("a b", "c")


def test_near_duplicates_by_minhash_first_occurrence_wins():
    index = NearDuplicateIndex(0.8)
    assert index.check_and_add(["How do I install the Debian package manager on a new machine?"], "first") is None
    found = index.check_and_add(["how do I install the Debian package manager on a new machine"], "second")
    assert found is not None and found[0] == "first" and found[1] >= 0.8
    assert index.check_and_add(["What is the capital of France?"], "third") is None
    assert index.check_and_add(["如何在新机器上安装Debian软件包管理器？"], "zh") is None
    assert index.check_and_add(["如何在新机器上安装Debian软件包管理器"], "zh2")[0] == "zh"


def test_one_changed_word_in_forty_is_a_near_duplicate_and_an_unrelated_text_is_not():
    text = ("the quick brown fox jumps over a lazy dog while seven small birds sing in the oak tree near "
            "the quiet river and the farmer walks slowly home across green fields before the evening rain starts "
            "falling on his roof")
    words = text.split(" ")
    assert len(words) == 40
    edited = [*words[:20], "purple", *words[21:]]
    unrelated = "Debian packages are built from source with dpkg-buildpackage and uploaded to the archive."
    index = NearDuplicateIndex(0.8)
    assert index.check_and_add([text], "original") is None
    assert index.check_and_add([" ".join(edited)], "edited")[0] == "original"
    assert index.check_and_add([unrelated], "unrelated") is None
    again = NearDuplicateIndex(0.8)  # the fixed seed gives the same estimate on every run
    again.check_and_add([text], "original")
    assert again.check_and_add([" ".join(edited)], "edited") == index.check_and_add([" ".join(edited)], "edited")


def test_near_duplicate_pairs_keep_their_order():
    index = NearDuplicateIndex(0.8)
    pair = ["How do I learn to swim as an adult?", "What is the best way for a grown-up to learn swimming?"]
    assert index.check_and_add(pair, "ab") is None
    assert index.check_and_add(pair[::-1], "ba") is None  # the reverse direction is its own training pair
    assert index.check_and_add([pair[0] + "!", pair[1]], "ab again")[0] == "ab"
