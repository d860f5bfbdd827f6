"""Whole-pipeline runs: a TOML file lists stages in order; `synth run` chains them and a rerun resumes."""
