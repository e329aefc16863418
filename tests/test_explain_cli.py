"""`mlwm explain` and `explain = true`: a cell is trained once (its weights kept, weights
only), explained on the test split, scored against the dataset's ground truth, and
retrained on its most salient inputs on request; a suite explains every cell of a
dataset that declares ground truth and no other."""

from __future__ import annotations

import json

from benchmarks.cli import main

ARGS = ["explain", "--dataset", "sparse_parity", "--model", "mlp", "--param", "n=12",
        "--param", "k=2", "--param", "n_train=600", "--param", "n_val=100",
        "--param", "n_test=200", "--max-epochs", "4", "--rows", "100"]


def test_explain_trains_once_scores_and_retrains_on_the_top_inputs(tmp_path, capsys):
    results = ["--results", str(tmp_path)]
    assert main(ARGS + ["--method", "saliency"] + results) == 0
    (explained,) = tmp_path.rglob("seed0.explain.json")
    record = explained.with_name("seed0.json")
    data = json.loads(explained.read_text())
    entry = data["methods"]["saliency"]
    assert data["view"] == "vector:onehot" and data["rows"] == 100
    assert 0.0 <= entry["auroc"] <= 1.0 and len(entry["mean_abs"]) == 1
    assert explained.with_name("seed0.weights.safetensors").is_file()
    before = record.stat().st_mtime_ns
    assert main(ARGS + ["--method", "ig", "--retrain-top", "4"] + results) == 0
    assert record.stat().st_mtime_ns == before  # the kept weights: nothing retrained
    data = json.loads(explained.read_text())
    assert "ig" in data["methods"] and data["retrain_top"]["k"] == 4
    assert len(data["retrain_top"]["inputs"]) == 4 and "AUROC" in capsys.readouterr().out


def test_a_suite_explains_the_datasets_that_declare_ground_truth(tmp_path):
    suite = tmp_path / "e.toml"
    suite.write_text('seeds = [0]\nexplain = ["saliency", "permutation"]\n[budget]\n'
                     'max_epochs = 2\n[[datasets]]\nname = "sparse_parity"\n'
                     'params = { n = 10, k = 2, n_train = 200, n_val = 50, n_test = 50 }\n'
                     '[[datasets]]\nname = "mobius"\n'
                     'params = { N = 4096, n_train = 200, n_val = 50, n_test = 50 }\n'
                     '[[models]]\nname = "mlp"\n[[models]]\nname = "linear"\n')
    assert main(["benchmark", "--suite", str(suite), "--results", str(tmp_path / "r")]) == 0
    found = {p.parent.relative_to(tmp_path / "r/runs/e").as_posix()
             for p in (tmp_path / "r").rglob("*.explain.json")}
    assert found == {"sparse_parity/mlp", "sparse_parity/linear"}  # mobius declares none
    linear = json.loads(next((tmp_path / "r").rglob("linear/seed0.explain.json")).read_text())
    assert set(linear["methods"]) == {"permutation"}  # a fitted model: permutation only
