"""Everything the leaderboard says beyond the rows, worked out once and rendered alike to
Markdown, CSV and HTML: per dataset its paired tests, its marks (saturated, solved by a
linear model) and its coverage of the plan; per modality its aggregate; the published
contrasts; the attributions of the models its explain files describe. Rendering never
recomputes any of it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .aggregates import DatasetMarks, ModalityAggregate, aggregates, dataset_marks
from .attributions import DatasetAttributions, attributions
from .contrasts import Contrast, contrasts
from .longer import Longer, longer_section
from .rows import Row, by_dataset
from .significance import ALPHA, DatasetTests, PredictionStore, dataset_tests


@dataclass(frozen=True)
class Coverage:
    """Which of the plan's compatible (dataset, model) pairs have a result."""

    expected: tuple[str, ...]  # model ids the plan runs on the dataset
    ran: tuple[str, ...]       # of those, with a result
    failed: tuple[str, ...]    # with records, none ok (failed or skipped)
    absent: tuple[str, ...]    # no record (not run yet, or of another configuration)


@dataclass
class Analysis:
    rows: list[Row]
    groups: dict[tuple[str, str], list[Row]]
    tests: dict[tuple[str, str], DatasetTests] = field(default_factory=dict)
    marks: dict[tuple[str, str], DatasetMarks] = field(default_factory=dict)
    coverage: dict[tuple[str, str], Coverage] = field(default_factory=dict)
    aggregates: list[ModalityAggregate] = field(default_factory=list)
    contrasts: list[Contrast] = field(default_factory=list)
    # datasets with explain files only: empty, the leaderboard has no Attributions section
    attributions: dict[tuple[str, str], DatasetAttributions] = field(default_factory=dict)
    # the not-converged rows beside their longer runs (a suite's `longer`); None: no section
    longer: Longer | None = None
    alpha: float = ALPHA


def coverage(group: list[Row], expected: Iterable[str]) -> Coverage:
    """A dataset's rows against the model ids the plan expects on it."""
    expected = tuple(sorted(expected))
    have = {r.model_id: r for r in group}
    return Coverage(expected, tuple(m for m in expected if m in have and have[m].ok),
                    tuple(m for m in expected if m in have and not have[m].ok),
                    tuple(m for m in expected if m not in have))


def analyse(rows: list[Row], expected: dict[str, set[str]] | None = None,
            contrast_specs: Iterable[dict[str, Any]] = (), alpha: float = ALPHA,
            store: PredictionStore | None = None,
            longer: tuple[str, list[Row]] | None = None) -> Analysis:
    """Tests, marks, coverage, aggregates, contrasts and attributions of a leaderboard's
    rows; with longer = (suite, its rows), the not-converged rows beside their longer
    runs."""
    store = store or PredictionStore()
    groups = by_dataset(rows)
    out = Analysis(rows, groups, alpha=alpha)
    for key, group in groups.items():
        out.tests[key] = dataset_tests(group, store, alpha)
        out.marks[key] = dataset_marks(group)
        if expected is not None and key[0] in expected:
            out.coverage[key] = coverage(group, expected[key[0]])
    out.aggregates = aggregates(groups, out.marks, alpha)
    out.contrasts = contrasts(list(contrast_specs), groups, store, alpha)
    out.attributions = attributions(groups, out.tests)
    if longer is not None and longer[1]:
        out.longer = longer_section(longer[0], groups, out.tests, longer[1], store, alpha)
    return out
