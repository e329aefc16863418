"""Exporting a dataset for people with their own training code: its splits as Parquet or
NPZ files beside a datasheet (benchmarks.export.writer)."""
