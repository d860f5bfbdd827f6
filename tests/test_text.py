"""Scripts and languages (synth.text): one table, so synthesis, the filter, ingest and the estimator agree."""

from __future__ import annotations

import importlib.util
import random

import pytest

from synth.filtering.record_rules import language_violation
from synth.ingest.lang import guess_lang
from synth.llm.tokens import estimate_text_tokens
from synth.synthesis.checks import check_language
from synth.text import LANG_SCRIPTS, SCRIPT_LANG, Script, dominant_script, lang_mismatch, script_weights, scripts_of
from synth.text.identify import guess_language
from synth.text.scripts import SCRIPT_RANGES, WORD
from tests.pipeline_fixtures import retrieval

HAS_LINGUA = importlib.util.find_spec("lingua") is not None

CASES = [  # (lang, text, written in that language's script?)
    ("en", "How do I reset my password on Debian?", True),
    ("de", "Wie setze ich mein Passwort unter Debian zurück?", True),
    ("fr", "Ceci est français", True),  # same script as en: the table cannot tell them apart
    ("en", "这是一个中文句子", False),
    ("zh", "为什么天空是蓝色的？", True),
    ("zh-Hans", "为什么天空是蓝色的？", True),
    ("zh", "This is English", False),
    ("zh", "東京は日本の首都です", False),  # Japanese: kana among the kanji
    ("ja", "東京は日本の首都です", True),
    ("ja", "カタカナだけのテキスト", True),
    ("ja", "東京大学", True),  # Japanese written in Han only
    ("ja", "This is English", False),
    ("zh", "列夫・托尔斯泰的小说", True),  # the katakana middle dot is Chinese punctuation too
    ("ko", "서울은 한국의 수도입니다", True),
    ("ko", "大韓民國 서울", True),  # Korean with Han
    ("ko", "시간과 날짜를 표시하는 Window Maker dockapp", True),
    ("zh", "서울은 한국의 수도입니다", False),
    ("ru", "Привет, как дела?", True),
    ("uk", "Привіт, як справи?", True),
    ("ru", "Hello there, how are you?", False),
    ("sr", "Zdravo svete", True),  # Serbian: Latin or Cyrillic
    ("sr", "Здраво свете", True),
    ("ar", "مرحبا بالعالم", True),
    ("ar", "שלום עולם", False),
    ("he", "שלום עולם", True),
    ("el", "Καλημέρα κόσμε", True),
    ("hi", "नमस्ते दुनिया", True),
    ("th", "สวัสดีครับ Python", True),
    ("ta", "வணக்கம் உலகம்", True),
    ("ta", "Hello world", False),
    ("ka", "გამარჯობა მსოფლიო", True),
    ("ka", "Привет мир", False),
    ("zh", "如何在 Python 中用 pandas 读取 CSV 文件", True),  # code words in a Chinese query
    ("zh", "用 pip install numpy 安装", True),  # a tie goes to the script written first
    ("zh", "如何修复 TypeError: 'NoneType' object is not subscriptable", False),  # mostly a quoted English message
    ("en", "The capital of China is Beijing (北京).", True),
    ("en", "🎉🎉 👍", True),  # no letters: not checked
    ("zh", "👍 12345", True),
    ("ja", "", True),
    ("xx", "Привет", True),  # a language the table does not know: not checked
    ("mul", "Hello 你好", True),
]


@pytest.mark.parametrize(("lang", "text", "fits"), CASES)
def test_synthesis_and_filter_agree_on_every_text(lang, text, fits):
    synthesis_keeps = check_language(lang, text) is None
    filter_keeps = lang_mismatch(text, lang) is None
    assert synthesis_keeps == filter_keeps == fits
    if text:  # the filter's record rule on a real record (a record cannot have empty texts)
        assert (language_violation(retrieval(text, text) | {"lang": lang}) is None) == fits
    if not fits:
        assert check_language(lang, text).rule == "wrong_language"
        assert check_language(lang, text).reason == lang_mismatch(text, lang)


@pytest.mark.parametrize(("lang", "text", "fits"), CASES)
def test_the_guessed_language_always_passes_the_check(lang, text, fits):
    assert lang_mismatch(text, guess_lang(text)) is None


def test_one_dominant_script_counting_words():
    assert dominant_script("为什么天空是蓝色的？") == "han"
    assert dominant_script("Python 里的 list 和 tuple 有什么区别？") == "han"
    assert dominant_script("hello world 世界") == "latin"  # two words each: the first script wins the tie
    assert dominant_script("世界和平 hello") == "han"
    assert dominant_script("東京大学") == Script.HAN
    assert dominant_script("東京大学の歴史") == Script.KANA  # one kana in seven: Japanese
    stray_kana = "这是我们的店，欢迎光临本店的の顾客们，我们提供最好的服务和产品"
    assert dominant_script(stray_kana) == Script.HAN  # one stray kana in Chinese
    assert dominant_script("สวัสดีครับ Python") == Script.THAI  # Thai has no spaces: letters, not runs, count
    assert dominant_script("12345 !? 🎉") is None


def weights_by_definition(text: str) -> dict[Script, int]:
    """The module docstring's rule, one character at a time: a run of a script's letters weighs a word, or each
    letter its `per_letter`; kanji count as kana when kana are a tenth of the CJK letters. In table order."""
    weights = dict.fromkeys((entry.script for entry in SCRIPT_RANGES), 0)
    previous = None
    for char in text:
        entry = next((e for e in SCRIPT_RANGES if any(low <= ord(char) <= high for low, high in e.ranges)), None)
        if entry is not None:
            weights[entry.script] += entry.per_letter or (WORD if entry is not previous else 0)
        previous = entry
    if weights[Script.KANA] and weights[Script.HAN] and weights[Script.KANA] >= 0.1 * (weights[Script.KANA] +
                                                                                       weights[Script.HAN]):
        weights[Script.KANA] += weights.pop(Script.HAN)
    return {script: weight for script, weight in weights.items() if weight}


def test_script_weights_follow_their_definition_in_every_script():
    letters = [chr(point) for entry in SCRIPT_RANGES for low, high in entry.ranges
               for point in {low, (low + high) // 2, high}]
    noise = [" ", "  ", "1", ",", "。", "\n", "-", "🎉"]
    rng = random.Random(7)
    texts = [*(text for _, text, _ in CASES), "".join(letters), "".join(noise)]
    texts += ["".join(rng.choice(letters if rng.random() < 0.7 else noise) * rng.randint(1, 3)
                      for _ in range(rng.randint(0, 30))) for _ in range(2000)]
    for text in texts:
        weights = script_weights(text)
        assert list(weights.items()) == list(weights_by_definition(text).items()), text
    for text in ["", " ", "123 !?", "a", "Hello, world", "x1", "\t_\n", *(t for t in texts if t.isascii())]:
        assert dominant_script(text) == (Script.LATIN if weights_by_definition(text) else None)


def test_unknown_language_falls_back_to_the_source_script_in_synthesis_only():
    assert check_language("mul", "Hello there", source="你好世界").rule == "wrong_language"
    assert check_language("mul", "你好", source="你好世界") is None
    assert check_language("mul", "Hello there") is None
    assert check_language("ta", "தமிழ் கேள்வி ஒன்று") is None  # once assumed Latin and dropped


def test_the_table_is_consistent():
    claimed: dict[int, Script] = {}
    for entry in SCRIPT_RANGES:
        for low, high in entry.ranges:
            assert low <= high
            for point in (low, high):
                assert claimed.setdefault(point, entry.script) == entry.script
        for other in SCRIPT_RANGES:
            if other.script != entry.script:
                assert not any(a <= d and c <= b for a, b in entry.ranges for c, d in other.ranges), other.script
    for script, lang in SCRIPT_LANG.items():
        assert script in LANG_SCRIPTS[lang]
    assert set(SCRIPT_LANG) == set(Script)
    assert scripts_of("ZH_tw") == {Script.HAN, Script.BOPOMOFO}
    assert scripts_of("pt-BR") == {Script.LATIN}
    assert scripts_of("xx") is None


def test_ingest_guess_by_script():
    assert guess_lang("为什么天空是蓝色的？") == "zh"
    assert guess_lang("東京は日本の首都です") == "ja"
    assert guess_lang("서울은 한국의 수도입니다") == "ko"
    assert guess_lang("Καλημέρα κόσμε") == "el"
    assert guess_lang("שלום עולם") == "he"
    assert guess_lang("வணக்கம் உலகம்") == "ta"
    assert guess_lang("12345") == "en"
    assert guess_lang("hello 世界 world") == "en"  # one Chinese word in English text no longer makes it Chinese
    expected = "de" if HAS_LINGUA else "en"
    assert guess_lang("Wie setze ich mein Passwort unter Debian zurück?") == expected


@pytest.mark.skipif(not HAS_LINGUA, reason="the lang extra (lingua-language-detector) is not installed")
def test_lingua_tells_languages_of_one_script_apart():
    assert guess_language("Das ist ein kurzer Satz über die Katze meiner Nachbarin.") == "de"
    assert guess_language("Ceci est une phrase française sur le chat de ma voisine.") == "fr"
    assert guess_language("Привіт, як у тебе справи сьогодні ввечері?") == "uk"
    assert guess_language("시간과 날짜를 표시하는 Window Maker dockapp") == "ko"  # candidates stay within Hangul


def test_token_estimate_counts_cjk_and_hangul_per_character():
    assert estimate_text_tokens("你好世界" * 25) == 101
    assert estimate_text_tokens("안녕하세요" * 20) == 101
    assert estimate_text_tokens("こんにちは、世界。") == 10
