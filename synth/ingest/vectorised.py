"""Ingest's vectorised path: pyarrow reads and checks a whole JSONL or Parquet chunk of a two-text retrieval shape.

The row-by-row path (records.RecordMaker) parses and checks one row at a time, at tens of thousands of rows a
second. Here pyarrow's JSON reader parses the chunk (a Parquet chunk is already a batch), the checks run
column-wise and ids are hashed in one tight loop, giving exactly the records the row path gives (same ids, values
and order). A chunk with a bad row, or with anything this path cannot prove it handles the same way (extra
columns, nested `--map` paths, escaped surrogates, non-text values, another shape, CSV or TSV), returns None and
goes the row path, so rejects stay exactly as there.
"""

from __future__ import annotations

import re
from functools import partial
from json.encoder import encode_basestring

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from synth.executor import PartResult
from synth.ingest import shapes
from synth.ingest.lang import AUTO, guess_lang
from synth.ingest.options import LANG_FIELD, IngestOptions
from synth.ingest.readers import Chunk, jsonl_lines, parquet_batch
from synth.schema import ARROW_SCHEMAS, Task, text_record_ids

PYTHON_WHITESPACE = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006" \
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
"""Every character whose `str.isspace()` is true: a text of only these is empty to `values.text`."""
_NOT_SPACE = "[^" + "".join(f"\\x{{{ord(c):x}}}" for c in PYTHON_WHITESPACE) + "]"
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
"""An escaped UTF-16 surrogate: the row path checks its pairing itself, so such a chunk goes that way."""
_JSON_SPACE = b" \t\r\n"


def pair_columns(opts: IngestOptions) -> tuple[str, str] | None:
    """The (query, positive) input columns of a two-text retrieval shape read by plain column names, else None."""
    build = opts.shape.build
    if opts.shape.task is not Task.RETRIEVAL or not (isinstance(build, partial) and build.func is shapes._pair):
        return None
    query, positive = (opts.columns[name] for name in build.args)
    if any("." in column for column in (query, positive, opts.columns[LANG_FIELD])):
        return None
    return query, positive


def vectorised_part(opts: IngestOptions, source: str, chunk: Chunk) -> PartResult | None:
    """The part of a chunk whose rows all become records, made column-wise; None sends it the row-by-row way."""
    pair = pair_columns(opts)
    if pair is None:
        return None
    columns = _text_columns(opts, pair)
    read = _jsonl_block(chunk, columns) or _parquet_block(chunk, columns)
    if read is None:
        return None
    table, location, numbers = read
    query, positive = (_nonempty_texts(table, column) for column in pair)
    langs = _langs(opts, table, len(numbers))
    if query is None or positive is None or langs is None:
        return None
    if opts.lang == AUTO:
        sample = query if opts.columns[opts.shape.lang_field] == pair[0] else positive
        langs = [lang or guess_lang(text) for lang, text in zip(langs, sample.to_pylist(), strict=True)]
    ids = text_record_ids(Task.RETRIEVAL, [query.to_pylist(), positive.to_pylist()])
    # meta is {"input": LOCATION} (no extra columns here), written as records._META_ENCODER writes it
    prefix = encode_basestring(location)[:-1]
    metas = [f'{{"input": {prefix}{number}"}}' for number in numbers]
    texts = {"id": ids, "lang": langs, "meta": metas}
    columns = {"query": query, "positive": positive, **{k: pa.array(v, pa.string()) for k, v in texts.items()}}
    records = _retrieval_table(opts, source, columns)
    return PartResult(records, [], rows_in=len(numbers))


Block = tuple[pa.Table, str, list[int]]
"""A chunk read column-wise: the table, the location of its rows but their number ("in.jsonl:line "), and those
numbers."""


def _jsonl_block(chunk: Chunk, text_columns: list[str]) -> Block | None:
    raw = jsonl_lines(chunk)
    if raw is None:
        return None
    name, lines = raw
    table = _read_objects([line for _number, line, _size in lines], text_columns)
    return None if table is None else (table, f"{name}:line ", [number for number, _line, _size in lines])


def _parquet_block(chunk: Chunk, text_columns: list[str]) -> Block | None:
    """A Parquet batch whose columns are all text columns of the shape, of a string type, and small enough that
    no row can pass the record size limit."""
    raw = parquet_batch(chunk)
    if raw is None:
        return None
    name, batch, start, max_bytes = raw
    if batch.get_total_buffer_size() > max_bytes or not set(batch.schema.names) <= set(text_columns):
        return None
    if not all(pa.types.is_string(kind) or pa.types.is_large_string(kind) for kind in batch.schema.types):
        return None
    table = pa.Table.from_batches([batch])
    for column in text_columns:
        if column not in table.column_names:  # a missing column reads as absent in every row
            table = table.append_column(column, pa.nulls(table.num_rows, pa.string()))
    return table, f"{name}:row ", list(range(start, start + table.num_rows))


def _retrieval_table(opts: IngestOptions, source: str, texts: dict[str, pa.Array]) -> pa.Table:
    """The records as `schema.to_table` makes them from the row path's dicts: the per-row text columns, the
    constant ones and nulls."""
    rows = len(texts["id"])
    constants = {"task": Task.RETRIEVAL.value, "instruction": opts.instruction, "source": source, "origin": "source",
                 "negatives": [], "negative_origins": []}
    schema = ARROW_SCHEMAS[Task.RETRIEVAL]
    columns = [
        texts[field.name] if field.name in texts
        else pa.repeat(pa.scalar(constants[field.name], field.type), rows) if field.name in constants
        else pa.nulls(rows, field.type)
        for field in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def _text_columns(opts: IngestOptions, pair: tuple[str, str]) -> list[str]:
    """The only columns a row may have: the pair and the language column (any other goes into meta, which this
    path does not write), all read as text."""
    return list(dict.fromkeys([*pair, opts.columns[LANG_FIELD]]))


def _read_objects(lines: list[bytes], text_columns: list[str]) -> pa.Table | None:
    """One row per line, each line a JSON object of valid UTF-8 with no other keys than `text_columns`, whose
    values are text or null; None otherwise."""
    if not all(line and line.strip(_JSON_SPACE)[:1] == b"{" and line.rstrip(_JSON_SPACE)[-1:] == b"}"
               for line in lines):
        return None  # also keeps bare `null` lines away from pyarrow, which crashes on them
    block = b"\n".join(line.rstrip(b"\r\n") for line in lines)
    if _SURROGATE_ESCAPE.search(block):
        return None
    try:
        block.decode("utf-8")
    except UnicodeDecodeError:
        return None
    schema = pa.schema([(column, pa.string()) for column in text_columns])
    try:
        table = pa_json.read_json(
            pa.BufferReader(block),
            read_options=pa_json.ReadOptions(use_threads=False, block_size=len(block) + 1),
            parse_options=pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error"),
        )
    except pa.ArrowInvalid:
        return None
    return table if table.num_rows == len(lines) else None


def _nonempty_texts(table: pa.Table, column: str) -> pa.Array | None:
    """The column when every row has non-empty text there (null, missing or blank text is a reject)."""
    values = table.column(column)
    if values.null_count or not pc.all(pc.match_substring_regex(values, _NOT_SPACE)).as_py():
        return None
    return values.combine_chunks().cast(pa.string())


def _langs(opts: IngestOptions, table: pa.Table, rows: int) -> list[str] | None:
    """Each row's language: `--lang`, else the row's own (stripped), else "" (to guess); None if one is blank."""
    if opts.lang != AUTO:
        return [opts.lang] * rows
    given = table.column(opts.columns[LANG_FIELD]).to_pylist()
    langs = ["" if lang is None else lang.strip() for lang in given]
    if any(not lang for lang, raw in zip(langs, given, strict=True) if raw is not None):
        return None
    return langs
