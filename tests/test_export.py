"""`mlwm export`: the splits in Parquet (read back with pyarrow and Hugging Face
`datasets`) and NPZ hold the same rows as the datamodule, with a datasheet."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import registry
from benchmarks.cli import main


def test_parquet_export_loads_with_pyarrow_and_hf_datasets(tmp_path, monkeypatch):
    pq = pytest.importorskip("pyarrow.parquet")
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    out = tmp_path / "out"
    args = ["export", "--dataset", "descents", "--param", "n=6", "--param", "n_train=80",
            "--param", "n_val=20", "--param", "n_test=30", str(out)]
    assert main(args) == 0
    dm = registry.create_dataset("descents", n=6, n_train=80, n_val=20, n_test=30)
    dm.setup()
    table = pq.read_table(out / "test.parquet")
    assert table.num_rows == 30
    assert np.array_equal(np.array(table["sequence"].to_pylist()), dm.inputs("test", "sequence").numpy())
    assert np.array_equal(np.array(table["target"].to_pylist()), dm.target("test").numpy())
    ds = datasets.load_dataset("parquet", data_files={"train": str(out / "train.parquet"),
                                                      "test": str(out / "test.parquet")},
                               cache_dir=str(tmp_path / "hf"))
    assert ds["test"].num_rows == 30 and ds["train"].num_rows == 80
    assert ds["test"]["sequence"] == dm.inputs("test", "sequence").tolist()
    sheet = json.loads((out / "datasheet.json").read_text())
    assert sheet["content_hash"] == dm.content_hash and sheet["version"] == dm.version
    assert sheet["params"]["n"] == 6 and "descent" in sheet["mathematics"].lower()
    assert (out / "README.md").is_file()


def test_npz_export_and_graphs_left_out(tmp_path):
    out = tmp_path / "npz"
    assert main(["export", "--dataset", "graph_properties", "--param", "n_train=40",
                 "--param", "n_val=10", "--param", "n_test=10", "--format", "npz", str(out)]) == 0
    data = np.load(out / "val.npz")
    assert set(data.files) == {"image", "vector", "target"} and len(data["target"]) == 10
    assert json.loads((out / "datasheet.json").read_text())["left_out"] == ["graph"]


def test_bad_export_requests_are_one_line(tmp_path, capsys):
    assert main(["export", "--dataset", "descents", "--format", "csv", str(tmp_path)]) == 2
    assert main(["export", "--dataset", "descnts", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "parquet, npz" in err[0] and "did you mean descents" in err[1]
