"""The `documents` shape: one document row -> its passages (`passage` records), cut by `synth.text.chunking`.

The document's text is normalised only in its line ends (CRLF and CR become LF; a leading byte-order mark is
dropped), and every passage is `text[char_start:char_end]` of that normalised text. Markup is kept as written; a
document that is markup only (HTML tags, comments and Markdown symbols without a word character) is a reject.
Without an id column a document's id is `sha256:` and the first 16 hex digits of the SHA-256 of its normalised
text: the same text gets the same id in any file, row or part layout.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from synth.ingest import values
from synth.ingest.values import MISSING, Rejected
from synth.text.chunking import ChunkSettings, chunk_spans

DOCUMENT_FIELDS = ("text",)
OPTIONAL_FIELDS = ("id", "title", "url")
_MARKUP = re.compile(r"<!--.*?-->|<[^>]*>|&[a-zA-Z]+;|&#\d+;", re.DOTALL)
_WORD = re.compile(r"\w")


def normalised(text: str) -> str:
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def derived_id(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _optional_text(field: str, value: Any) -> str | None:
    if value is MISSING or value is None:
        return None
    if isinstance(value, int | str) and not isinstance(value, bool):
        return str(value).strip() or None
    raise Rejected("wrong_type", f"{field}: expected text, got {type(value).__name__} {str(value)[:60]!r}")


def passages(row: dict[str, Any], chunking: ChunkSettings) -> list[dict[str, Any]]:
    """The passage bodies of one document row, or Rejected (empty, markup only)."""
    text = normalised(values.text("text", row["text"]))
    if not _WORD.search(_MARKUP.sub(" ", text)):
        raise Rejected("markup_only", "text: only markup (tags, entities or Markdown symbols), no words")
    document_id = _optional_text("id", row.get("id", MISSING)) or derived_id(text)
    title, url = _optional_text("title", row.get("title", MISSING)), _optional_text("url", row.get("url", MISSING))
    return [
        {"text": text[start:end], "document_id": document_id, "chunk_index": index, "char_start": start,
         "char_end": end, "title": title, "url": url}
        for index, (start, end) in enumerate(chunk_spans(text, chunking))
    ]
