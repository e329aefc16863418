"""Dataset plugins: one module per dataset family, each registering its datasets with
`benchmarks.registry.register_dataset`. Every module here is imported on first registry use."""
