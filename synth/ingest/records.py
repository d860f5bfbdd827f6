"""One input row -> unified records (shared columns, stable id, meta) or one reject naming its location and rule."""

from __future__ import annotations

import json
from typing import Any

from synth.ingest.chat import USER_ROLES
from synth.ingest.classes import ClassPool
from synth.ingest.lang import AUTO, guess_lang
from synth.ingest.options import LANG_FIELD, IngestOptions
from synth.ingest.readers import SourceRow
from synth.ingest.values import MISSING, Rejected, lookup
from synth.schema import Task, record_id
from synth.store import reject

STAGE = "ingest"
_META_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)


def _sample_text(value: Any) -> str:
    """Text to guess a language from: the value, or a chat's first user turn (system prompts are often English)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        for message in value:
            if isinstance(message, dict) and str(message.get("role", message.get("from"))).lower() in USER_ROLES:
                text = message.get("content", message.get("value"))
                return text if isinstance(text, str) else ""
    return ""


class RecordMaker:
    """Turns readable rows of one input file into records of the shape's task."""

    def __init__(self, opts: IngestOptions, source: str, pool: ClassPool | None = None):
        self.opts = opts
        self.source = source
        self.pool = pool
        self.shape = opts.shape
        self.task = opts.shape.task
        self.used_columns = {column.split(".")[0] for column in opts.columns.values()}

    def fields(self, values: dict[str, Any]) -> dict[str, Any]:
        return {name: lookup(values, self.opts.columns[name]) for name in (*self.shape.fields, *self.shape.optional)}

    def lang(self, values: dict[str, Any]) -> str:
        if self.opts.lang != AUTO:
            return self.opts.lang
        given = lookup(values, self.opts.columns[LANG_FIELD])
        if given is None or given is MISSING:
            return guess_lang(_sample_text(lookup(values, self.opts.columns[self.shape.lang_field])))
        if not isinstance(given, str) or not given.strip():
            raise Rejected("wrong_type", f"lang: expected a language code, got {given!r}")
        return given.strip()

    def bodies(self, row: SourceRow) -> tuple[str, list[dict[str, Any]]]:
        """(language, task columns) of a readable row; raises Rejected."""
        assert row.values is not None
        lang = self.lang(row.values)
        return lang, self.shape.build(self.fields(row.values), lang, self.opts.settings)

    def make(self, row: SourceRow) -> tuple[list[dict[str, Any]], dict[str, str] | None]:
        """The row's records, or its reject."""
        if not row.ok:
            return [], reject(STAGE, row.location, row.rule, row.reason, row.raw)
        try:
            lang, bodies = self.bodies(row)
        except Rejected as exc:
            return [], reject(STAGE, row.location, exc.rule, exc.reason, row.values)
        assert row.values is not None
        extra = {k: v for k, v in row.values.items() if k not in self.used_columns}
        return [self._record(body, lang, row.location, extra) for body in bodies], None

    def _record(self, body: dict[str, Any], lang: str, location: str, extra: dict[str, Any]) -> dict[str, Any]:
        meta: dict[str, Any] = {"input": location}
        if extra:
            meta["extra"] = extra
        meta.update(body.pop("meta", {}))
        record = {
            **body,
            "id": record_id(self.task, body),
            "task": self.task.value,
            "instruction": self.opts.instruction,
            "lang": lang,
            "source": self.source,
            "origin": "source",
            "parent_id": None,
            "meta": _META_ENCODER.encode(meta),
        }
        if self.task is Task.RETRIEVAL:
            record.update(negatives=[], negative_origins=[], positive_score=None, negative_scores=None)
        elif self.task is Task.CLS:
            record["positive"], record["negatives"] = self._class_samples(record)
        return record

    def _class_samples(self, record: dict[str, Any]) -> tuple[str | None, list[str]]:
        if self.pool is None:
            return None, []
        return self.pool.draw(record["id"], record["label"], record["text"], self.opts.num_negatives)
