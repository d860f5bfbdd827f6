"""How a query is written before it is embedded: the way the embedding model was trained to see queries.

A sentence-transformers model declares its query prompt in `config_sentence_transformers.json` (`prompts`, as
Qwen3-Embedding and QZhou-Embedding ship); models that declare none (all-MiniLM-L6-v2) were trained on bare queries,
and an instruction they never saw only pulls their query vectors away from the passages.
"""

from __future__ import annotations

import json
from pathlib import Path

from synth.errors import ConfigError

AUTO_QUERY_FORMAT = "auto"
"""Follow the model: its declared query prompt, else the bare query."""
QZHOU_QUERY_FORMAT = "Instruct: {task}\nQuery:{query}"
"""QZhou-Embedding's query format, with the record's instruction (its eval code adds a space after `Query:`)."""
NAMED_QUERY_FORMATS = {"qzhou": QZHOU_QUERY_FORMAT, "bare": "{query}"}
ST_CONFIG = "config_sentence_transformers.json"


def check_query_format(query_format: str) -> str:
    """A format must contain `{query}`; `{task}` (the record's instruction) is optional."""
    if "{query}" not in query_format:
        raise ConfigError(f"query_format must contain {{query}} (or be one of auto, qzhou, bare), got {query_format!r}")
    try:
        query_format.format(task="", query="")
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"query_format {query_format!r} is not a valid format: {exc}") from exc
    return query_format


def declared_query_prompt(model: str) -> str | None:
    """The query prompt a sentence-transformers model declares (its `query` prompt, else its default one), or None.

    Read from a local model folder, or from the Hugging Face cache for a hub name; nothing is downloaded.
    """
    config = _local_config(model)
    if config is None:
        return None
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    prompts = data.get("prompts") if isinstance(data, dict) else None
    if not isinstance(prompts, dict):
        return None
    prompt = prompts.get("query")
    if prompt is None and isinstance(data.get("default_prompt_name"), str):
        prompt = prompts.get(data["default_prompt_name"])
    return prompt if isinstance(prompt, str) and prompt else None


def _local_config(model: str) -> Path | None:
    folder = Path(model).expanduser()
    if folder.is_dir():
        path = folder / ST_CONFIG
        return path if path.is_file() else None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    cached = try_to_load_from_cache(model, ST_CONFIG)
    return Path(cached) if isinstance(cached, str) else None


def resolve_query_format(requested: str | None, model: str | None) -> str:
    """The format to use: a named one, a literal one, or (auto) the model's declared prompt or the bare query."""
    requested = requested or AUTO_QUERY_FORMAT
    if requested in NAMED_QUERY_FORMATS:
        return NAMED_QUERY_FORMATS[requested]
    if requested != AUTO_QUERY_FORMAT:
        return check_query_format(requested)
    prompt = declared_query_prompt(model) if model else None
    if prompt is None:
        return "{query}"
    return prompt.replace("{", "{{").replace("}", "}}") + "{query}"


def format_query(query: str, instruction: str | None, query_format: str) -> str:
    """The text the model embeds for a query; a format that needs `{task}` leaves a query without one as it is."""
    if "{task}" in query_format and not instruction:
        return query
    return query_format.format(task=instruction or "", query=query)
