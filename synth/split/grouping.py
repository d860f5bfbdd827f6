"""Leak-free groups of records and the seeded choice of which groups form the eval side.

Two records are in one group when they share a `document_id`, or their positives / passages are near duplicates,
or their queries are (MinHash, as the filter compares them; identical normalised texts always are). A record
without `document_id` is its own document. Whole groups go to one side, so no document and no near-duplicate text
is on both.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from synth.filtering.minhash import NearDuplicateIndex
from synth.schema import Task
from synth.store import PartRef, read_part

GROUPED_TEXTS: dict[Task, tuple[tuple[str, tuple[str, ...]], ...]] = {
    Task.RETRIEVAL: (("query", ("query",)), ("passage", ("positive",))),
    Task.PASSAGE: (("passage", ("text",)),),
    Task.STS: (("pair", ("text_a", "text_b")),),
    Task.CLS: (("query", ("text",)),),
}
"""Per task, (index, fields) whose near duplicates join groups. Negatives are left out: a hard negative recurs
across many records and would chain the whole dataset into one group. STS compares the pair, since STS sentences
recur with many partners."""
COLUMNS = sorted({"id", "document_id", *(f for specs in GROUPED_TEXTS.values() for _, fields in specs
                                         for f in fields)})


class UnionFind:
    """Disjoint sets over 0..n-1, grown on demand."""

    def __init__(self) -> None:
        self.parent: list[int] = []

    def add(self) -> int:
        self.parent.append(len(self.parent))
        return len(self.parent) - 1

    def find(self, node: int) -> int:
        while self.parent[node] != node:
            self.parent[node] = self.parent[self.parent[node]]
            node = self.parent[node]
        return node

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


@dataclass
class Grouping:
    """Which rows of each part go to eval, and how the groups came out."""

    eval_rows: dict[str, list[bool]]
    """Part key -> per row, whether it goes to eval."""
    groups: int
    eval_groups: int
    rows: int
    eval_count: int
    joined_by_text: int
    """Records that joined another record's group by a near-duplicate text (not a shared document)."""

    @property
    def eval_share(self) -> float:
        return self.eval_count / self.rows if self.rows else 0.0


def group_key(seed: int, member_id: str) -> str:
    """A group's place in the seeded order: a hash of the seed and the smallest record id in it, so the order
    depends neither on part layout nor on row order."""
    return hashlib.sha256(f"{seed}\x1f{member_id}".encode()).hexdigest()


def choose_eval(sizes: dict[int, int], members: dict[int, str], fraction: float, seed: int) -> set[int]:
    """Groups in seeded order; each joins eval when that brings the eval rows closer to `fraction` of all rows,
    unless it would leave train empty."""
    rows = sum(sizes.values())
    target = fraction * rows
    chosen: set[int] = set()
    total = 0
    for root in sorted(sizes, key=lambda r: group_key(seed, members[r])):
        if abs(total + sizes[root] - target) < abs(total - target) and total + sizes[root] < rows:
            chosen.add(root)
            total += sizes[root]
    return chosen


def build_grouping(parts: Iterable[PartRef], fraction: float, seed: int, threshold: float) -> Grouping:
    """One pass over every part: union records by document and near-duplicate texts, then choose eval groups."""
    sets = UnionFind()
    documents: dict[str, int] = {}
    indexes: dict[str, NearDuplicateIndex] = {}
    ids: list[str] = []
    spans: dict[str, tuple[int, int]] = {}
    joined = 0
    for part in parts:
        table = read_part(part)
        rows = table.select([c for c in COLUMNS if c in table.column_names]).to_pylist()
        start = len(ids)
        for row in rows:
            node = sets.add()
            ids.append(row["id"])
            if row.get("document_id"):
                document = documents.setdefault(row["document_id"], node)
                sets.union(node, document)
            for name, fields in GROUPED_TEXTS[part.task]:
                index = indexes.setdefault(name, NearDuplicateIndex(threshold))
                found = index.check_and_add([row[f] for f in fields], str(node))
                if found is not None:
                    joined += sets.find(int(found[0])) != sets.find(node)
                    sets.union(node, int(found[0]))
        spans[part.key] = (start, len(ids))
    roots = [sets.find(node) for node in range(len(ids))]
    sizes: dict[int, int] = {}
    members: dict[int, str] = {}
    for node, root in enumerate(roots):
        sizes[root] = sizes.get(root, 0) + 1
        members[root] = min(members.get(root, ids[node]), ids[node])
    chosen = choose_eval(sizes, members, fraction, seed)
    flags = {key: [roots[node] in chosen for node in range(a, b)] for key, (a, b) in spans.items()}
    return Grouping(flags, len(sizes), len(chosen), len(ids), sum(sizes[r] for r in chosen), joined)
