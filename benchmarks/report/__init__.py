"""Reporting: run records in; rows, paired tests, aggregates, published contrasts,
tables, Markdown, CSV, HTML, plots and `mlwm compare` out.

    rows          records -> one Row per (dataset, version, model, budget)
    significance  paired tests between rows, Holm per family (stats does the statistics)
    aggregates    saturation, per-modality ranks, Friedman/Nemenyi, normalised scores
    contrasts     the suite's published contrasts against the records
    analysis      all of the above, once per leaderboard
    tables        the table model every output renders; markdown, html, plots render it
    build         the leaderboard files; compare the command
"""
