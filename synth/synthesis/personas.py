"""The persona pool of query generation: loaded from JSONL, the top-k per passage by embedding or lexical similarity."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console

from synth.errors import InputFileError
from synth.ingest.readers import read_rows
from synth.synthesis.similarity import TextSimilarity
from synth.synthesis.text import shingles

_PACKAGE = Path(__file__).resolve().parent.parent
console = Console(stderr=True)


def default_personas_path() -> Path:
    """The shipped sample pool: inside the installed wheel, or `data_samples/` of a source checkout."""
    installed = _PACKAGE / "_data" / "personas.jsonl"
    return installed if installed.is_file() else _PACKAGE.parent / "data_samples" / "personas.jsonl"


@dataclass(frozen=True)
class Persona:
    id: str
    text: str
    lang: str


def load_personas(path: Path | str) -> list[Persona]:
    """Personas from a JSONL/CSV/Parquet file with a `persona` column (`id`, `lang` optional).

    Unreadable rows are skipped with a warning naming the first one; a pool with no persona is an error.
    """
    personas: list[Persona] = []
    bad: list[str] = []
    for row in read_rows(path):
        text = (row.values or {}).get("persona")
        if not row.ok or not isinstance(text, str) or not text.strip():
            bad.append(f"{row.location}: {row.reason or 'no persona text'}")
            continue
        values = row.values or {}
        personas.append(Persona(str(values.get("id") or len(personas)), text.strip(), str(values.get("lang") or "")))
    if not personas:
        first = f"; first problem: {bad[0]}" if bad else ""
        raise InputFileError(f"no personas in {path} (each row needs a non-empty 'persona' field){first}")
    if bad:
        console.print(f"[yellow]personas: skipped {len(bad)} unreadable rows, first {bad[0]}", highlight=False,
                      soft_wrap=True)
    return personas


class PersonaIndex:
    """Top-k personas for a passage: cosine of embeddings when an embedder is given, else TF-IDF over content words.

    Ties (for example a passage sharing no word with any persona) are broken by a per-passage seeded shuffle, so
    the choice is reproducible and still varied.
    """

    def __init__(self, personas: list[Persona], similarity: TextSimilarity | None = None):
        self.personas = personas
        self.similarity = similarity
        self.vectors = similarity.vectors([p.text for p in personas]) if similarity else None
        self.terms = [shingles(p.text) for p in personas]
        frequency: dict[str, int] = defaultdict(int)
        self.postings: dict[str, list[int]] = defaultdict(list)
        for index, terms in enumerate(self.terms):
            for term in terms:
                frequency[term] += 1
                self.postings[term].append(index)
        self.idf = {t: math.log(1 + len(personas) / f) for t, f in frequency.items()}
        self.norms = [math.sqrt(sum(self.idf[t] ** 2 for t in terms)) or 1.0 for terms in self.terms]

    def lexical_scores(self, passage: str) -> np.ndarray:
        scores = np.zeros(len(self.personas))
        terms = [t for t in shingles(passage) if t in self.idf]
        for term in terms:
            for index in self.postings[term]:
                scores[index] += self.idf[term] ** 2
        norm = math.sqrt(sum(self.idf[t] ** 2 for t in terms)) or 1.0
        return scores / (np.array(self.norms) * norm)

    def top(self, passages: list[str], keys: list[str], k: int) -> list[list[Persona]]:
        """The k best personas for each passage; `keys` seed the tie-breaking shuffle per passage."""
        if self.vectors is not None and self.similarity is not None:
            all_scores = self.similarity.vectors(passages) @ self.vectors.T
        else:
            all_scores = np.stack([self.lexical_scores(p) for p in passages]) if passages else np.zeros((0, 0))
        chosen = []
        for scores, key in zip(all_scores, keys, strict=True):
            order = list(range(len(self.personas)))
            random.Random(key).shuffle(order)
            order.sort(key=lambda i: -scores[i])  # stable: equal scores keep the shuffled order
            chosen.append([self.personas[i] for i in order[:k]])
        return chosen


def match_persona(answer: str, candidates: list[Persona]) -> Persona | None:
    """The candidate the model named: exact text (case and spacing aside), else one containing or contained in it."""
    wanted = " ".join(answer.split()).casefold()
    if not wanted:
        return None
    for persona in candidates:
        if " ".join(persona.text.split()).casefold() == wanted:
            return persona
    for persona in candidates:
        text = " ".join(persona.text.split()).casefold()
        if wanted in text or text in wanted:
            return persona
    return None
