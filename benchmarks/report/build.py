"""Writing a suite's leaderboard: plots/, leaderboard.md and .csv and leaderboard.html,
from the rows of its current records; where explain files exist, attributions.csv and a
heat map per dataset (plots/<dataset>.attributions.png and .svg). What a run already knew (which pairs cannot run,
which configurations are current, which pairs it was to run, the published contrasts it
checks) comes in with the plan's facts, never from the registry."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..run.files import write_text_atomic
from .analysis import Analysis, analyse
from .markdown import attributions_csv, markdown, to_csv
from .rows import Row, aggregate, current_only, load_records
from .significance import ALPHA


@dataclass
class PlanFacts:
    """What the plan knows that the tables show. The CLI fills every field from the
    SuitePlan (benchmarks.cli._facts); a test may fill any subset.

    current: (dataset id, model id, seed) -> the config hash of the plan's cell
        (plan.current_hashes()); records of other configurations are left out. None keeps
        every record.
    cannot_run: (dataset id, model id) pairs the model cannot run at all (plan.cannot_run):
        "-" in the grid.
    incompatible: (dataset id, model id, reason) pairs the suite asked for that cannot run
        (plan.incompatible), listed under "Pairs left out".
    expected: dataset id -> the model ids the plan runs on it (the compatible pairs:
        {c.dataset.id: {c.model.id, ...}} over plan.cells); each dataset's table then says
        "k of n compatible pairs ran". None: no coverage lines.
    contrasts: the suite's published contrasts (plan.suite.contrasts), each a table of
        name, source, dataset (an id), models (ids in the published order, best first),
        expected (the published claim; "tie" for models expected to be indistinguishable)
        and split ("test", the default, or "ood_test").
    alpha: the level of every paired test and of the Friedman test.
    longer, longer_current: the suite that trains this suite's not-converged rows longer
        (plan.suite.longer) and its current configurations; its records in the same
        results folder make the section that sets those rows beside their longer runs.
    """

    current: dict[tuple[str, str, int], str] | None = None
    cannot_run: set[tuple[str, str]] = field(default_factory=set)
    incompatible: list[tuple[str, str, str]] = field(default_factory=list)  # asked, left out
    expected: dict[str, set[str]] | None = None
    contrasts: list[dict[str, Any]] = field(default_factory=list)
    alpha: float = ALPHA
    longer: str = ""  # the suite that trains the not-converged rows longer (its records here)
    longer_current: dict[tuple[str, str, int], str] | None = None  # its current cells


def output_dir(results_dir: str | Path, suite: str) -> Path:
    """Where a suite's tables go: the top of the results folder for the reference (what
    results/ holds) and for the default suite (what results-local/ holds), unless the
    folder holds the reference's records, whose tables the default's must not replace;
    every other suite's in <results>/suites/<name>/."""
    results_dir = Path(results_dir)
    if suite == "reference" or (suite == "default"
                                and not (results_dir / "runs" / "reference").is_dir()):
        return results_dir
    return results_dir / "suites" / suite


def _warn_plots(exc: Exception) -> None:
    print(f"mlwm: warning: plots not written ({type(exc).__name__}: {exc})", file=sys.stderr)


def write_attribution_heatmaps(a: Analysis, out_dir: str | Path
                               ) -> dict[tuple[str, str], Path]:
    """Each dataset's attribution heat map (Analysis.attributions) into out_dir as
    <dataset>.attributions.png and .svg, saved as the other plots are (no date in either,
    renamed into place); {(dataset, version): png}."""
    import matplotlib

    from .attributions import heatmap_figure
    from .plots import STYLE, _save, plot_stem

    out_dir = Path(out_dir)
    written = {}
    with matplotlib.rc_context(STYLE):
        for key, section in a.attributions.items():
            h = section.heatmap
            if h is None:
                continue
            out_dir.mkdir(parents=True, exist_ok=True)
            n = len(h.seeds)
            fig = heatmap_figure(h, f"{section.label}: {h.model_id}, {h.method}, mean "
                                    f"|attribution| over {n} seed{'s' * (n != 1)}")
            png = out_dir / f"{plot_stem(*key)}.attributions.png"
            _save(fig, png)
            written[key] = png
    return written


def write_reports(a: Analysis, suite: str, problems: list[tuple[Path, str]], out: Path, *,
                  facts: PlanFacts | None = None, html: bool = True, plots: bool = True,
                  plot_files: dict[tuple[str, str], dict[str, Path]] | None = None
                  ) -> list[Path]:
    """leaderboard.md and .csv (and attributions.csv where explain files exist), then
    (optionally) plots/ and leaderboard.html, into `out`. Plots are drawn first so that
    the Markdown can link the diagrams and heat maps that exist; plot_files: the
    per-dataset plots, when the caller drew them already."""
    facts = facts or PlanFacts()
    diagrams: dict[str, Path] = {}
    heatmaps: dict[tuple[str, str], Path] = {}
    if plots:
        try:
            from .plots import write_cd_diagrams, write_plots

            if plot_files is None:
                plot_files = write_plots(a.rows, out / "plots")
            diagrams = write_cd_diagrams(a.aggregates, out / "plots")
        except Exception as exc:  # a plotting bug must not cost the tables
            _warn_plots(exc)
        if a.attributions:
            try:  # nor the other plots, nor the tables
                heatmaps = write_attribution_heatmaps(a, out / "plots")
            except Exception as exc:
                _warn_plots(exc)
    plot_files = plot_files or {}
    md, csv_path = out / "leaderboard.md", out / "leaderboard.csv"
    write_text_atomic(md, markdown(a, suite, problems, facts.cannot_run, facts.incompatible,
                                   diagrams, out, heatmaps))
    write_text_atomic(csv_path, to_csv(a))
    paths = [md, csv_path]
    if html:
        from .html import html_page

        page = out / "leaderboard.html"
        write_text_atomic(page, html_page(a, suite, problems, plot_files, facts.cannot_run,
                                          diagrams, facts.incompatible, heatmaps))
        paths.append(page)
    attributions_path = out / "attributions.csv"  # after the page: the CLI names paths[:3]
    if a.attributions:
        write_text_atomic(attributions_path, attributions_csv(a))
        paths.append(attributions_path)
    else:  # an earlier build's file would describe records no longer current
        attributions_path.unlink(missing_ok=True)
    for png in ([p for kinds in plot_files.values() for p in kinds.values()]
                + list(diagrams.values()) + list(heatmaps.values())):
        paths += [png, png.with_suffix(".svg")]
    return paths


@dataclass
class Leaderboard:
    """What building a leaderboard wrote and found."""

    paths: list[Path]                      # md and csv first
    rows: list[Row]
    problems: list[tuple[Path, str]]       # files under runs/ that are not valid records
    stale: int = 0                         # valid records of another configuration, left out
    analysis: Analysis | None = None       # tests, marks, aggregates, contrasts


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
    longer = None
    if facts.longer:
        long_records, _ = load_records(Path(results_dir) / "runs", facts.longer)
        if facts.longer_current is not None:
            long_records, _ = current_only(long_records, facts.longer_current)
        longer = (facts.longer, aggregate(long_records))
    out = Path(out_dir) if out_dir else output_dir(results_dir, suite)
    job = None
    if plots:  # drawn in child processes while the tests run here
        try:
            from .plots import start_plots

            job = start_plots(rows, out / "plots")
        except Exception as exc:
            _warn_plots(exc)
    try:
        a = analyse(rows, facts.expected, facts.contrasts, facts.alpha, longer=longer)
    except BaseException:  # Ctrl-C or a bug: no drawing child outlives the build
        if job is not None:
            job.cancel()
        raise
    plot_files = None
    if job is not None:
        try:
            plot_files = job.result()
        except Exception as exc:  # a plotting bug must not cost the tables
            _warn_plots(exc)
            plot_files = {}
    paths = write_reports(a, suite, problems, out, facts=facts, html=html, plots=plots,
                          plot_files=plot_files)
    return Leaderboard(paths, rows, problems, len(stale), a)
