"""The leaderboard's Attributions section: a suite with `explain = true` writes explain
files beside its records; the leaderboard scores each (dataset, model, method) from them
(AUROC and precision at k over seeds, a 'did not learn' flag from the baseline test), in
Markdown, attributions.csv and HTML, with a heat map per dataset; a suite without
explain files has no such section."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import t as student_t

from benchmarks.cli import main
from benchmarks.report import stats
from benchmarks.report.attributions import Heatmap, heatmap_figure
from benchmarks.report.build import build_leaderboard

SUITE = """seeds = [0, 1]
explain = {explain}
[budget]
max_epochs = 3
[[datasets]]
name = "sparse_parity"
params = {{ n = 10, k = 3, n_train = 256, n_val = 64, n_test = 128 }}
[[datasets]]
name = "formulas"
params = {{ formula = "nguyen1", distractors = 2, n_train = 128, n_val = 32, n_test = 64 }}
[[models]]
name = "mlp"
hparams = {{ hidden = 16 }}
[[models]]
name = "linear"
"""
FIELDS = ["dataset", "dataset_version", "model", "view", "method", "metric", "test_mean",
          "learned", "learned_why", "auroc_mean", "auroc_ci95", "auroc_n",
          "precision_at_k_mean", "precision_at_k_ci95", "precision_at_k_n", "n_seeds",
          "seeds", "heatmap", "error", "note"]


def run_suite(root: Path, name: str, explain: bool) -> Path:
    suite = root / f"{name}.toml"
    suite.write_text(SUITE.format(explain=str(explain).lower()))
    results = root / "results"
    assert main(["benchmark", "--suite", str(suite), "--results", str(results)]) == 0
    return results


@pytest.fixture(scope="module")
def explained(tmp_path_factory) -> Path:
    # formulas with distractors: the linear model learns it and its inputs can be ranked
    # (nguyen1 alone has one input, all relevant: nothing to score)
    return run_suite(tmp_path_factory.mktemp("attr"), "attr", True)


def file_numbers(results: Path, suite: str) -> dict[tuple[str, str, str], dict[str, list]]:
    """Straight from the explain files: per (dataset, model, method) the seeds and their
    AUROC and precision at k (None where a seed was not scorable)."""
    out: dict[tuple[str, str, str], dict[str, list]] = {}
    for path in sorted((results / "runs" / suite).rglob("seed*.explain.json")):
        data = json.loads(path.read_text())
        dataset, model = path.parent.parent.name, path.parent.name
        seed = int(path.name.split(".")[0].removeprefix("seed"))
        for method, entry in data["methods"].items():
            got = out.setdefault((dataset, model, method), {"seeds": [], "auroc": [], "p": []})
            got["seeds"].append(seed)
            got["auroc"].append(entry.get("auroc"))
            got["p"].append(entry.get("precision_at_k"))
    return out


def section(md: str) -> str:
    start, end = md.index("## Attributions"), md.index("## Full grid")
    assert start < end
    return md[start:end]


def table_rows(text: str) -> dict[str, list[list[str]]]:
    """Per '### dataset' block of the section, its table's rows as cells."""
    out: dict[str, list[list[str]]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("### "):
            current = line[4:]
            out[current] = []
        elif line.startswith("| ") and not line.startswith("| model |") and current:
            out[current].append([c.strip() for c in line.strip("|").split(" | ")])
    return out


def close(text: str, value: float) -> bool:
    return abs(float(text) - value) <= 1e-6


def ci95(values: list[float]) -> float:
    n = len(values)
    return student_t.ppf(0.975, n - 1) * float(np.std(values, ddof=1)) / math.sqrt(n)


def test_section_csv_and_heatmap_follow_the_explain_files(explained):
    out = explained / "suites" / "attr"
    md = (out / "leaderboard.md").read_text()
    numbers = file_numbers(explained, "attr")
    assert {k[0] for k in numbers} == {"sparse_parity", "formulas"}
    text = section(md)
    assert "AUROC" in text and "0.5 = chance" in text and "precision at k" in text
    assert "Ground truth: the 3 hidden bits" in text  # the dataset's own sentence
    rows = table_rows(text)
    # one table line per (dataset, model, method) the files hold, under its dataset
    lines = {(d, cells[0], cells[2]) for d, body in rows.items() for cells in body}
    assert sum(len(b) for b in rows.values()) == len(numbers) and lines == set(numbers)
    # sorted by AUROC, best first
    for body in rows.values():
        scores = [float(c[3].split(" ")[0]) for c in body if c[3]]
        assert scores == sorted(scores, reverse=True)

    with open(out / "attributions.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == FIELDS
        table = list(reader)
    assert len(table) == len(numbers)
    for r in table:
        got = numbers[(r["dataset"], r["model"], r["method"])]
        assert r["n_seeds"] == str(len(got["seeds"])) and r["seeds"] == " ".join(
            map(str, sorted(got["seeds"])))
        for column, values in (("auroc", got["auroc"]), ("precision_at_k", got["p"])):
            scored = [v for v in values if v is not None]
            assert r[f"{column}_n"] == str(len(scored))
            if scored:
                assert close(r[f"{column}_mean"], float(np.mean(scored)))
                if len(scored) > 1:
                    assert close(r[f"{column}_ci95"], ci95(scored))
            else:
                assert r[f"{column}_mean"] == ""
        # the Markdown line says the same, and flags a model that did not learn
        cells = next(c for c in rows[r["dataset"]] if (c[0], c[2]) == (r["model"], r["method"]))
        assert ("did not learn" in cells[-1]) == (r["learned"] == "False")
    # linear learns the formula (a paired win over the constant) and ranks x first
    linear = next(r for r in table if (r["dataset"], r["model"]) == ("formulas", "linear"))
    assert linear["learned"] == "True" and float(linear["auroc_mean"]) > 0.9
    heat = [r for r in table if r["heatmap"] == "True"]
    assert [(r["dataset"], r["model"]) for r in heat] == [("formulas", "linear")]

    png = out / "plots" / "formulas.attributions.png"
    assert png.is_file() and png.with_suffix(".svg").is_file()
    assert "<dc:date>" not in png.with_suffix(".svg").read_text()  # rebuilds leave it as is
    assert "![attribution heat map, formulas: linear, permutation]" \
           "(plots/formulas.attributions.png)" in text
    assert not (out / "plots" / "sparse_parity.attributions.png").exists()  # nothing learned
    page = (out / "leaderboard.html").read_text()
    assert page.index("<h2>Attributions</h2>") < page.index("<h2>Full grid</h2>")
    assert 'alt="attribution heat map, formulas: linear, permutation"' in page


def test_stale_failed_and_hostile_explain_files(explained, tmp_path):
    """A file of another configuration is left out, a method's error shows its first
    line, and the file's text is escaped like every record's."""
    import shutil

    results = tmp_path / "results"
    shutil.copytree(explained / "runs", results / "runs")
    runs = results / "runs" / "attr"
    stale = runs / "formulas" / "mlp" / "seed1.explain.json"
    data = json.loads(stale.read_text())
    stale.write_text(json.dumps({**data, "config_hash": "0" * 16}))
    failed = runs / "sparse_parity" / "mlp" / "seed0.explain.json"
    data = json.loads(failed.read_text())
    data["methods"]["ig"] = {"error": "RuntimeError: <b>boom</b> | x\nsecond line"}
    data["ground_truth"] = "# injected\n| a | b | <script>"
    failed.write_text(json.dumps(data))
    (runs / "sparse_parity" / "mlp" / "seed1.explain.json").write_text(
        json.dumps({**json.loads((runs / "sparse_parity" / "mlp" / "seed1.explain.json")
                                 .read_text()), "ground_truth": "# injected\n| a | b | <script>"}))
    board = build_leaderboard(results, "attr", plots=False, html=True)
    md = board.paths[0].read_text()
    text = section(md)
    assert "<script" not in md and "<b>" not in md and "second line" not in md
    assert not [ln for ln in md.splitlines() if ln.startswith(("#", "|")) and "injected" in ln]
    assert "error: seed 0: RuntimeError: &lt;b&gt;boom&lt;/b&gt; \\| x" in text
    rows = table_rows(text)
    for cells in rows["formulas"]:
        if cells[0] == "mlp":
            assert cells[5] == "1"  # seed 1's file is of another configuration
    ig = next(c for c in rows["sparse_parity"] if (c[0], c[2]) == ("mlp", "ig"))
    assert ig[5] == "1" and len(ig) == 8  # seed 1 only; the pipe did not add a cell
    page = (results / "suites" / "attr" / "leaderboard.html").read_text()
    assert page.count("<script") == 1 and "&lt;b&gt;boom" in page  # its own script only


def test_no_explain_files_no_section(tmp_path):
    results = run_suite(tmp_path, "plain", False)
    out = results / "suites" / "plain"
    assert not list(results.rglob("*.explain.json"))
    assert "Attributions" not in (out / "leaderboard.md").read_text()
    assert "Attributions" not in (out / "leaderboard.html").read_text()
    assert not (out / "attributions.csv").exists()
    assert not list((out / "plots").glob("*.attributions.*"))


def test_heatmap_of_tables_with_a_coarser_mask_and_masks_that_vary():
    """(C, H, W) attributions with a mask per cell draw one panel per output; seeds that
    declare different inputs relevant are told apart."""
    rng = np.random.default_rng(0)
    relevant = np.zeros((2, 2, 9), dtype=bool)
    relevant[0, :, 0], relevant[1, :, 4] = True, True
    h = Heatmap("cnn2d", "saliency", "image", stats.mean_ci([0.7, 0.8]), (0, 1), (3, 3, 3),
                rng.random((2, 2, 27)), relevant)
    assert h.relevant_varies
    fig = heatmap_figure(h, "a title")
    assert len([ax for ax in fig.axes if ax.images]) == 2  # one panel per output
    flat = Heatmap("mlp", "ig", "vector:onehot", stats.mean_ci([0.6]), (0,), (5,),
                   rng.random((1, 1, 5)), np.array([[[True, False, True, False, False]]]))
    fig = heatmap_figure(flat)
    assert not flat.relevant_varies and len(fig.axes[0].patches) == 2  # outlined inputs
