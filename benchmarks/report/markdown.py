"""The leaderboard as Markdown and CSV text (from the table model of
benchmarks.report.tables). Text from records is data: Markdown gets its HTML, pipes and
line breaks escaped; CSV cells that a spreadsheet would run as a formula are quoted."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from .rows import Row, by_dataset, mean, std
from .tables import (
    LEGEND,
    Table,
    TableCell,
    dataset_heading,
    dataset_table,
    fmt,
    status_text,
    summary_table,
)


def md_escape(text: str) -> str:
    """Text as one Markdown table cell: pipes escaped, line breaks as spaces."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def md_table(table: Table) -> list[str]:
    """A table as Markdown lines, the best cells in bold."""

    def text(c: TableCell) -> str:
        return f"**{md_escape(c.text)}**" if c.best else md_escape(c.text)

    return (["| " + " | ".join(md_escape(h) for h in table.head) + " |",
             "|" + "---|" * len(table.head)]
            + ["| " + " | ".join(text(c) for c in cells) + " |" for cells in table.body])


def markdown(rows: list[Row], suite: str, problems: list[tuple[Path, str]] = (),
             cannot_run: set[tuple[str, str]] = frozenset(),
             incompatible: list[tuple[str, str, str]] = ()) -> str:
    """The whole leaderboard page: legend, hardware, summary grid, a table per dataset."""
    out = [f"# Leaderboard: suite `{suite}`", "", LEGEND, ""]
    devices = sorted({r.device for r in rows if r.device})
    if devices:
        out += [f"Hardware: {', '.join(devices)}.", ""]
    out += ["## Summary", ""] + md_table(summary_table(rows, cannot_run)) + [""]
    for group in by_dataset(rows).values():
        title, metric_line = dataset_heading(group)
        out += [f"## {md_escape(title)}", ""]
        if group[0].description:
            out += [md_escape(group[0].description), ""]
        out += [md_escape(metric_line), ""] + md_table(dataset_table(group)) + [""]
    if incompatible:
        out += ["## Pairs left out", "",
                "Pairs the suite names that cannot run (no view the model accepts, or "
                "another task type):", ""]
        out += [f"- {md_escape(d)} · {md_escape(m)}: {md_escape(why)}"
                for d, m, why in sorted(incompatible)] + [""]
    if problems:
        out += ["## Files left out", ""] + [f"- `{p}`: {md_escape(why)}" for p, why in problems] + [""]
    return "\n".join(out)


CSV_FIELDS = ["dataset", "dataset_version", "model", "model_name", "baseline", "param_budget",
              "metric", "higher_is_better", "test_mean", "test_std", "val_mean", "val_std",
              "ood_mean", "ood_std", "n_seeds", "seeds", "n_params", "train_s_mean",
              "epochs_mean", "n_failed", "n_skipped", "status", "secondary"]


def to_csv(rows: list[Row]) -> str:
    """Every row with every aggregated figure, one line per (dataset, model, budget)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for group in by_dataset(rows).values():
        for r in group:
            writer.writerow({
                "dataset": r.dataset_id, "dataset_version": r.dataset_version,
                "model": r.model_id, "model_name": r.model_name, "baseline": r.baseline,
                "param_budget": r.param_budget or "", "metric": r.metric,
                "higher_is_better": r.higher_is_better,
                "test_mean": fmt(mean(r.test), 6), "test_std": fmt(std(r.test), 6),
                "val_mean": fmt(mean(r.val), 6), "val_std": fmt(std(r.val), 6),
                "ood_mean": fmt(mean(r.ood), 6), "ood_std": fmt(std(r.ood), 6),
                "n_seeds": len(r.test), "seeds": " ".join(map(str, r.seeds)),
                "n_params": r.n_params if r.n_params is not None else "",
                "train_s_mean": fmt(mean(r.train_s), 3), "epochs_mean": fmt(mean(r.epochs), 2),
                "n_failed": len(r.failed), "n_skipped": len(r.skipped), "status": status_text(r),
                "secondary": " ".join(f"{k}={fmt(mean(v), 6)}" for k, v in sorted(r.secondary.items())),
            })
    return buf.getvalue()


