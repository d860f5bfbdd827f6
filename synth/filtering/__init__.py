"""Quality filters: each rule is a small pure function; `synth.filtering.stage` combines them into a stage."""
