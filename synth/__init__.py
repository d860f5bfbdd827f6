"""synth: training data for text-embedding models."""
__version__ = "0.1.0"
