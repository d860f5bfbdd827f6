"""Hard-negative mining: corpus and FAISS index built once per stage, positive-aware rules, sampling."""
