"""Ingest: raw dataset files (JSONL, CSV, TSV, Parquet) of any supported shape -> unified shards."""
