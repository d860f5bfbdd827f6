"""`synth eval`: fine-tune a sentence-transformers model on synth's data and measure it on a BEIR-layout eval set."""
