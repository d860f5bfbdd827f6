"""Trainer formats: sentence-transformers, FlagEmbedding and plain JSONL, from the unified final shards."""
