"""Batch mode: a stage's requests answered through a provider's Batch API or offline batch files (docs/batch.md).

`driver.run_batched` runs a stage in rounds with `collector.Collector` as the engine's hook; `store.BatchStore` keeps
requests and batches in the stage journal; `files` writes and reads Batch JSONL; `client` speaks Files and Batches.
"""
