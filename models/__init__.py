"""Model plugins: one module per model family, each registering factories with
`benchmarks.registry.register_model`. Every module here is imported on first registry use."""
