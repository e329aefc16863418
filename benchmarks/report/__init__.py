"""Reporting: run records in, rows, tables, Markdown, CSV, HTML, plots and statistics out."""
