"""`mine` as a part-wise stage: the index is built once in `prepare`, records are mined part by part."""

from __future__ import annotations

import zlib
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from synth.embed.cached import CachedEmbedder
from synth.mining.artifact import CorpusSettings, open_artifact
from synth.mining.index import IndexSettings
from synth.mining.miner import Miner, MineResult, MineSettings
from synth.schema import Task
from synth.stage import PartResult, Stage
from synth.store import PartRef, location, reject


class MineStage(Stage):
    """Adds mined hard negatives, scores and round-trip ranks to retrieval records; other tasks (passages
    included: they are candidates, not mined) pass through unchanged."""

    name = "mine"
    holds_model = True

    def __init__(
        self,
        out: Path,
        embedder: CachedEmbedder,
        mine: MineSettings,
        corpus: CorpusSettings,
        index: IndexSettings,
    ):
        self.out = Path(out)
        self.embedder = embedder
        self.mine_settings = mine.check()
        self.corpus = corpus
        self.index_settings = index
        self.miner: Miner | None = None
        self.artifact: dict[str, Any] = {}

    def config(self) -> dict[str, Any]:
        return {
            "embed_model": self.embedder.model_id,
            "query_format": self.embedder.query_format,
            **asdict(self.mine_settings),
            "corpus": asdict(self.corpus),
            # The search batch size changes memory, not results: it stays out of the config hash.
            "index": {k: v for k, v in asdict(self.index_settings).items() if k != "search_batch_size"},
        }

    def prepare(self, parts: list[PartRef]) -> None:
        if not any(p.task == Task.RETRIEVAL for p in parts):
            return
        before = self.embedder.stats.embedded
        neighbours = self.mine_settings.range_max + 64
        index, built = open_artifact(self.out, parts, self.corpus, self.embedder, self.index_settings, neighbours)
        self.artifact = {**index.meta, "built_this_run": built, "gpus": index.devices,
                         "corpus_texts_embedded": self.embedder.stats.embedded - before}
        self.miner = Miner(index, self.embedder, self.mine_settings, self.index_settings.search_batch_size)

    def process(self, part: PartRef, table: pa.Table) -> PartResult:
        rows = table.to_pylist()
        if part.task != Task.RETRIEVAL or self.miner is None or not rows:
            return PartResult(rows, stats={"rows_passed_through": len(rows)} if part.task != Task.RETRIEVAL else {})
        good, rejects = [], []
        for number, row in enumerate(rows):
            if len(row.get("negative_origins") or []) != len(row.get("negatives") or []):
                rejects.append(reject(self.name, location(part, number, row["id"]), "negative_origins_mismatch",
                                      "negative_origins must have one entry per negative", row))
            else:
                good.append((number, row))
        before = asdict(self.embedder.stats)
        rng = np.random.default_rng([self.mine_settings.seed, zlib.crc32(part.key.encode("utf-8"))])
        result = self.miner.mine([row for _, row in good], rng) if good else MineResult([], {}, {})
        for position, reason in result.dropped.items():
            number, row = good[position]
            rejects.append(reject(self.name, location(part, number, row["id"]), "roundtrip", reason, row))
        after = asdict(self.embedder.stats)
        result.counts.update(texts_embedded=after["embedded"] - before["embedded"],
                             cache_hits=after["cache_hits"] - before["cache_hits"])
        return PartResult(result.rows, rejects, result.counts)

    def prepare_embedder(self) -> CachedEmbedder:
        return self.embedder

    def finish(self, out: Path) -> dict[str, Any]:
        return {"index": self.artifact} if self.artifact else {}

    def endpoint_usage(self) -> dict[str, Any]:
        return self.embedder.endpoint_usage()

    def close(self) -> None:
        """Close an API embedder's HTTP session (a later part opens a new one); a local model stays loaded."""
        self.embedder.close()
