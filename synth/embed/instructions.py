"""Query-side instruction formatting: instruction-aware embedders see `Instruct: {task}\\nQuery:{query}`."""

from __future__ import annotations

from synth.errors import ConfigError

QZHOU_QUERY_FORMAT = "Instruct: {task}\nQuery:{query}"
"""QZhou-Embedding's query format (its evaluation code adds a space after `Query:`); documents get none."""


def check_query_format(query_format: str) -> str:
    """A format must contain `{query}`; `{task}` (the record's instruction) is optional."""
    if "{query}" not in query_format:
        raise ConfigError(f"query_format must contain {{query}}, got {query_format!r}")
    try:
        query_format.format(task="", query="")
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"query_format {query_format!r} is not a valid format: {exc}") from exc
    return query_format


def format_query(query: str, instruction: str | None, query_format: str = QZHOU_QUERY_FORMAT) -> str:
    """The text the model embeds for a query; without an instruction the query goes in as it is."""
    if not instruction:
        return query
    return query_format.format(task=instruction, query=query)
