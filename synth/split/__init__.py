"""Train/eval split by leak-free groups (document and near-duplicate texts), the eval side also in BEIR layout."""
