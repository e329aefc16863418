"""Writing a suite's leaderboard: leaderboard.md and .csv, plots/ and leaderboard.html,
from the rows of its current records. What a run already knew (which pairs cannot run,
which configurations are current) comes in with the plan's facts, never from the
registry."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..run.files import write_text_atomic
from .markdown import markdown, to_csv
from .rows import Row, aggregate, current_only, load_records


@dataclass
class PlanFacts:
    """What the plan knows that the tables show: the current configuration of each cell
    ((dataset id, model id, seed) -> config hash; None keeps every record) and the pairs
    that cannot run."""

    current: dict[tuple[str, str, int], str] | None = None
    cannot_run: set[tuple[str, str]] = field(default_factory=set)
    incompatible: list[tuple[str, str, str]] = field(default_factory=list)  # asked, left out


def output_dir(results_dir: str | Path, suite: str) -> Path:
    """The default suite's tables sit in results/; other suites' in results/suites/<name>/."""
    results_dir = Path(results_dir)
    return results_dir if suite == "default" else results_dir / "suites" / suite


def write_reports(rows: list[Row], suite: str, problems: list[tuple[Path, str]],
                  out: Path, *, facts: PlanFacts | None = None, html: bool = True,
                  plots: bool = True) -> list[Path]:
    """leaderboard.md and .csv, then (optionally) plots/ and leaderboard.html, into `out`."""
    facts = facts or PlanFacts()
    md, csv_path = out / "leaderboard.md", out / "leaderboard.csv"
    write_text_atomic(md, markdown(rows, suite, problems, facts.cannot_run, facts.incompatible))
    write_text_atomic(csv_path, to_csv(rows))
    paths = [md, csv_path]
    plot_files: dict[tuple[str, str], dict[str, Path]] = {}
    if plots:
        try:
            from .plots import write_plots

            plot_files = write_plots(rows, out / "plots")
        except Exception as exc:  # a plotting bug must not cost the tables
            print(f"mlwm: warning: plots not written ({type(exc).__name__}: {exc})",
                  file=sys.stderr)
    if html:
        from .html import html_page

        page = out / "leaderboard.html"
        write_text_atomic(page, html_page(rows, suite, problems, plot_files, facts.cannot_run))
        paths.append(page)
    for kinds in plot_files.values():
        for png in kinds.values():
            paths += [png, png.with_suffix(".svg")]
    return paths


@dataclass
class Leaderboard:
    """What building a leaderboard wrote and found."""

    paths: list[Path]                      # md and csv first
    rows: list[Row]
    problems: list[tuple[Path, str]]       # files under runs/ that are not valid records
    stale: int = 0                         # valid records of another configuration, left out


def build_leaderboard(results_dir: str | Path, suite: str, out_dir: str | Path | None = None,
                      *, facts: PlanFacts | None = None, html: bool = True,
                      plots: bool = True) -> Leaderboard:
    """Write the suite's leaderboard from its records under results_dir/runs."""
    facts = facts or PlanFacts()
    records, problems = load_records(Path(results_dir) / "runs", suite)
    stale: list = []
    if facts.current is not None:
        records, stale = current_only(records, facts.current)
    rows = aggregate(records)
    out = Path(out_dir) if out_dir else output_dir(results_dir, suite)
    paths = write_reports(rows, suite, problems, out, facts=facts, html=html, plots=plots)
    return Leaderboard(paths, rows, problems, len(stale))
