"""A stand-in model for the synthesis stages on the loopback server, and small English/Chinese input shards.

`FakeModel` answers each stage's structured request the way a capable model would, from the texts it finds in the
rendered prompt, so the checks pass; `mode="copy"` answers with the source texts, so they fail. Every request body
is kept in `bodies`, which is how tests see exactly what reached the server.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from pathlib import Path
from typing import Any

from synth.schema import Task, validate_row
from synth.store import write_part

CJK = re.compile(r"[\u4e00-\u9fff]")
WORD = re.compile(r"\w+")
CJK_POOL = "天地人和山水风云花草日月星辰江河湖海春夏秋冬东南西北金木火土"

RETRIEVAL_ROWS = [
    {"query": "What causes ocean tides?", "lang": "en",
     "positive": "Ocean tides are caused mainly by the gravitational pull of the Moon. The Sun also contributes, "
                 "and when both align the tides are strongest."},
    {"query": "How do vaccines train the immune system?", "lang": "en",
     "positive": "Vaccines expose the immune system to a harmless part of a pathogen. The body learns to make "
                 "antibodies, so a later infection is fought off quickly."},
    {"query": "长城是什么时候修建的？", "lang": "zh",
     "positive": "长城的修建始于春秋战国时期，秦朝统一后连接成万里长城。现存的大部分城墙建于明朝。"},
    {"query": "为什么天空是蓝色的？", "lang": "zh",
     "positive": "阳光进入大气层后，波长较短的蓝光被空气分子散射得最多，所以我们看到的天空呈现蓝色。"},
]
STS_ROWS = [
    {"text_a": "A man is playing a guitar on stage.", "text_b": "Someone performs music with a guitar.",
     "score": 0.8, "label": "4.0", "lang": "en"},
    {"text_a": "一个女人正在切洋葱。", "text_b": "有人在厨房里切菜。", "score": 0.6, "label": "3.0", "lang": "zh"},
]
CLS_ROWS = [
    {"text": "The striker scored twice in the final minutes of the match.", "label": "sports", "lang": "en"},
    {"text": "央行宣布下调存款准备金率，以支持实体经济发展。", "label": "财经", "lang": "zh"},
]
INSTRUCTIONS = {Task.RETRIEVAL: "Given a query, retrieve passages that answer the query",
                Task.STS: "Retrieve semantically similar text", Task.CLS: "Classify the given text by its category"}


def write_input(directory: Path, task: Task, rows: list[dict[str, Any]], part: str = "part-00000") -> Path:
    """Rows as one unified part of a stage directory (the way ingest would have written them)."""
    full = [validate_row(task, {"task": task.value, "instruction": INSTRUCTIONS[task], "source": "test", **r})
            for r in rows]
    write_part(directory, task, part, full)
    return directory


def _seeded(*parts: str) -> random.Random:
    return random.Random(hashlib.sha256("\x1f".join(parts).encode()).hexdigest())


def shuffled(text: str, salt: str) -> str:
    """Same words (characters for Chinese) in another order: a rewrite that changes the wording."""
    rng = _seeded(text, salt)
    if CJK.search(text):
        chars = list(re.sub(r"[，。？！、\s]", "", text))
        rng.shuffle(chars)
        return "".join(chars) + "。"
    words = text.rstrip(".?!").split()
    rng.shuffle(words)
    return " ".join(words) + text[-1]


def new_topic(text: str, salt: str) -> str:
    """A text of the same length and script with other words: a different topic, as far as the checks can tell."""
    rng = _seeded(text, salt)
    if CJK.search(text):
        return CJK.sub(lambda m: rng.choice(CJK_POOL), text)
    return WORD.sub(lambda m: "".join(rng.choice("bcdfghklmnprstvz") for _ in m.group(0)), text)


def tagged(prompt: str, tag: str) -> str:
    found = re.search(f"<{tag}>\\n(.*?)\\n</{tag}>", prompt, re.DOTALL)
    return found.group(1) if found else ""


class FakeModel:
    """`server.handler = FakeModel()`: answers paraphrase, augment, llm-negatives and querygen requests."""

    def __init__(self, mode: str = "good"):
        self.mode = mode
        self.bodies: list[dict[str, Any]] = []

    def prompts(self) -> list[str]:
        return [m["content"] for b in self.bodies for m in b["messages"] if m["role"] == "user"]

    def __call__(self, body: dict[str, Any]) -> str:
        self.bodies.append(body)
        name = body["response_format"]["json_schema"]["name"]
        prompt = next(m["content"] for m in body["messages"] if m["role"] == "user")
        wanted = int((re.search(r"(\d+) (?:time|new|passage|个|组|次)", prompt) or re.search(r"(\d+)", "1")).group(1))
        salt = json.dumps(body.get("seed"))
        return json.dumps(getattr(self, name.lower())(prompt, wanted, salt), ensure_ascii=False)

    def change(self, text: str, salt: str, topic: bool) -> str:
        if self.mode == "copy":
            return text
        return new_topic(text, salt) if topic else shuffled(text, salt)

    def paraphraseoutput(self, prompt: str, wanted: int, salt: str) -> dict[str, Any]:
        fields = re.findall(r"^<(\w+)>$", prompt.split("Original:")[-1].split("原文：")[-1], re.MULTILINE)
        return {"items": [{f: self.change(tagged(prompt, f), f"{salt}{i}", False) for f in fields}
                          for i in range(wanted)]}

    def augmentoutput(self, prompt: str, wanted: int, salt: str) -> dict[str, Any]:
        query, passage = tagged(prompt, "query"), tagged(prompt, "passage")
        return {"items": [{"query": self.change(query, f"{salt}q{i}", True),
                           "positive": self.change(passage, f"{salt}p{i}", True),
                           "negative": self.change(passage, f"{salt}n{i}", True)} for i in range(wanted)]}

    def augmentclsoutput(self, prompt: str, wanted: int, salt: str) -> dict[str, Any]:
        return {"items": [{"text": self.change(tagged(prompt, "text"), f"{salt}{i}", True)} for i in range(wanted)]}

    def negativesoutput(self, prompt: str, wanted: int, salt: str) -> dict[str, Any]:
        kinds = ["deviates_meaning", "adds_irrelevant", "different_aspect"]
        positive = tagged(prompt, "positive")
        return {"negatives": [{"kind": kinds[i % 3], "passage": self.change(positive, f"{salt}{i}", True)}
                              for i in range(wanted)]}

    def queryconfig(self, prompt: str, wanted: int, salt: str) -> dict[str, Any]:
        candidates = re.findall(r"^- (.+)$", prompt.split("**Characters**")[-1].split("**角色**")[-1], re.MULTILINE)
        return {"character": candidates[0] if self.mode == "good" else "a random stranger"}

    def generatedquery(self, prompt: str, wanted: int, salt: str) -> dict[str, Any]:
        requested = re.search(r"should be (\d+) words|约为 (\d+) 个", prompt)
        length = int(requested.group(1) or requested.group(2))
        rng = _seeded(prompt, salt)
        if "值使用中文" in prompt or "value in Chinese" in prompt:
            return {"query": "".join(rng.choice(CJK_POOL) for _ in range(length)) + "？"}
        return {"query": " ".join("".join(rng.choice("bcdfghklmnprstvz") for _ in range(5)) for _ in range(length))}
