"""Text embeddings: backends behind one protocol, instruction formatting and an on-disk cache.

Public entry points: `build_embedder(options)` (from the shared `embed_*` option keys) and
`synth.embed.scoring.score_pairs` (cosine of (query, document) pairs through the cache).
"""

from synth.embed.base import Embedder, normalize
from synth.embed.cached import CachedEmbedder
from synth.embed.factory import EMBED_DEFAULTS, build_embedder

__all__ = ["EMBED_DEFAULTS", "CachedEmbedder", "Embedder", "build_embedder", "normalize"]
