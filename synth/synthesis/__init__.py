"""LLM synthesis: paraphrase, augment, LLM hard negatives and persona query generation, with their checks."""
