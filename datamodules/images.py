"""Digit images: MNIST-1D (procedural 1-D signals), scikit-learn's 8 x 8 digits, real MNIST.

Each input is a handwritten (or procedurally drawn) digit, the label its value 0-9
(ten classes). They are the image-side controls of the suite: known datasets on which the
model families separate for reasons of architecture, not of mathematics.
"""

from __future__ import annotations

import gzip
import os
import random
import struct
from pathlib import Path

import numpy as np
import torch

from benchmarks.contract import DatasetSpec, Modality, TaskType, ViewSpec
from benchmarks.data import MathDataModule, check_range, first_occurrences, split_counts
from benchmarks.errors import UserError
from benchmarks.registry import register_dataset


def _split_off(rng: np.random.Generator, x: np.ndarray, y: np.ndarray,
               n_val: int) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """A seeded random (train, val) partition of (x, y), val of size n_val."""
    order = rng.permutation(len(y))
    val, train = order[:n_val], order[n_val:]
    return (x[train], y[train]), (x[val], y[val])


def _tensors(x: np.ndarray, y: np.ndarray) -> dict[str, torch.Tensor]:
    return {"x": torch.from_numpy(np.ascontiguousarray(x)),
            "y": torch.from_numpy(y.astype(np.int64))}


# -- MNIST-1D --------------------------------------------------------------------------------
@register_dataset("mnist1d")
class MNIST1D(MathDataModule):
    """MNIST-1D: 40-sample 1-D signals of the ten digits (10 classes), generated locally."""

    version = "1"
    smoke_params = {"num_samples": 500, "n_val": 50}

    def __init__(self, shuffle: bool = False, num_samples: int = 5000, n_val: int = 500,
                 data_seed: int = 42) -> None:
        super().__init__()
        # the package's defaults: 5,000 signals, 80% train, seed 42
        check_range("num_samples", num_samples, 100, 1_000_000, dataset="mnist1d")
        check_range("n_val", n_val, 1, int(num_samples * 0.8) - 1, dataset="mnist1d")
        self.save_hyperparameters()

    def generate(self) -> dict[str, dict[str, torch.Tensor]]:
        from mnist1d.data import get_dataset_args, make_dataset

        p = self.params
        args = get_dataset_args()
        args.num_samples, args.seed = p["num_samples"], p["data_seed"]
        args.shuffle_seq = p["shuffle"]
        # make_dataset seeds numpy's and random's global generators; leave them as found
        np_state, py_state = np.random.get_state(), random.getstate()
        try:
            data = make_dataset(args)  # local generation; get_dataset() would download
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)
        train, val = _split_off(self.rng(), data["x"].astype(np.float32), data["y"], p["n_val"])
        return {"train": _tensors(*train), "val": _tensors(*val),
                "test": _tensors(data["x_test"].astype(np.float32), data["y_test"])}

    def build_spec(self) -> DatasetSpec:
        # A 1-channel signal offered as a vector: 1-D CNNs and RNNs read it as (B, 1, 40).
        return DatasetSpec(
            name=self.name, version=self.version, task=TaskType.MULTICLASS, num_outputs=10,
            views=(ViewSpec(Modality.VECTOR, (40,)),), params=self.params,
            description="MNIST-1D digit signals"
                        + (", positions shuffled" if self.params["shuffle"] else ""))

    def make_view(self, raw: dict[str, torch.Tensor], modality: Modality) -> torch.Tensor:
        return raw["x"]


# -- scikit-learn digits --------------------------------------------------------------------
@register_dataset("digits")
class Digits(MathDataModule):
    """scikit-learn's 1,797 real 8 x 8 handwritten digits (10 classes, no download)."""

    version = "1"
    smoke_params = {"n_val": 100, "n_test": 200}

    def __init__(self, n_val: int = 200, n_test: int = 400, data_seed: int = 0) -> None:
        super().__init__()
        check_range("n_val", n_val, 1, 800, dataset="digits")
        check_range("n_test", n_test, 1, 800, dataset="digits")
        self.save_hyperparameters()

    def generate(self) -> dict[str, dict[str, torch.Tensor]]:
        from sklearn.datasets import load_digits

        digits = load_digits()
        x, y = digits.images.astype(np.uint8), digits.target  # grey levels 0..16
        first = first_occurrences(x)  # none repeat today; a future release might
        x, y = x[first], y[first]
        p = self.params
        order = self.rng().permutation(len(y))
        sizes = {"train": len(y) - p["n_val"] - p["n_test"], "val": p["n_val"], "test": p["n_test"]}
        return {s: _tensors(x[order[sl]], y[order[sl]]) for s, sl in split_counts(sizes).items()}

    def build_spec(self) -> DatasetSpec:
        return DatasetSpec(
            name=self.name, version=self.version, task=TaskType.MULTICLASS, num_outputs=10,
            views=(ViewSpec(Modality.IMAGE, (1, 8, 8)), ViewSpec(Modality.VECTOR, (64,))),
            description="8 x 8 handwritten digits (scikit-learn)", params=self.params)

    def make_view(self, raw: dict[str, torch.Tensor], modality: Modality) -> torch.Tensor:
        x = raw["x"].float() / 16
        return x.unsqueeze(1) if modality is Modality.IMAGE else x.flatten(1)


# -- real MNIST from IDX files --------------------------------------------------------------
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (the MNIST format, optionally gzipped) of unsigned bytes as an array."""
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
        raise UserError(f"dataset 'mnist': {path} is not an IDX file of unsigned bytes")
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise UserError(f"dataset 'mnist': {path} holds {arr.size} bytes, its header says "
                        f"{'x'.join(map(str, dims))}")
    return arr.reshape(dims).copy()  # writable, unlike the buffer it views


def mnist_paths(root: Path) -> list[Path]:
    """The four IDX files in root (plain or .gz); a one-line UserError names what is missing."""
    found, missing = [], []
    for name in MNIST_FILES:
        options = [root / name, root / f"{name}.gz"]
        hit = next((p for p in options if p.is_file()), None)
        (found if hit else missing).append(hit or name)
    if missing:
        what = (f"the MNIST IDX files {', '.join(MNIST_FILES)}" if len(missing) == 4
                else f"{', '.join(missing)} (of the four MNIST IDX files)")
        raise UserError(f"dataset 'mnist': {root} lacks {what}, each plain or .gz; "
                        "pass root=DIR or set MLWM_MNIST_DIR")
    return found


@register_dataset("mnist")
class MNIST(MathDataModule):
    """Real MNIST (28 x 28, 10 classes) read from the four IDX files in `root`."""

    version = "1"
    needs_files = True  # the generic tests skip it; tests/test_datasets_graph_image.py writes files
    smoke_params = {"n_train": 200, "n_val": 50}

    def __init__(self, root: str = "", n_train: int | None = 5000, n_val: int = 1000,
                 data_seed: int = 0) -> None:
        super().__init__()
        root = str(Path(root or os.environ.get("MLWM_MNIST_DIR")
                        or Path.home() / ".cache" / "mlwm-bench" / "mnist").expanduser())
        if n_train is not None:
            check_range("n_train", n_train, 1, 60000, dataset="mnist")
        check_range("n_val", n_val, 1, 30000, dataset="mnist")
        # n_train=None takes every training image not in val (58,000 of real MNIST)
        mnist_paths(Path(root))  # fail while planning, not after other cells have trained
        self.save_hyperparameters()  # with root resolved, so records say where data came from

    def generate(self) -> dict[str, dict[str, torch.Tensor]]:
        p = self.params
        x_tr, y_tr, x_te, y_te = (read_idx(f) for f in mnist_paths(Path(p["root"])))
        if len(x_tr) != len(y_tr) or len(x_te) != len(y_te):
            raise UserError(f"dataset 'mnist': image and label counts differ in {p['root']}")
        # the test split stays whole; training images equal to a test image (or to an
        # earlier training image) are dropped, so no input row is in two splits
        first = first_occurrences(np.concatenate([x_te, x_tr]).reshape(len(x_te) + len(x_tr), -1))
        first = first[first >= len(x_te)] - len(x_te)
        x_tr, y_tr = x_tr[first], y_tr[first]
        n_train = len(y_tr) - p["n_val"] if p["n_train"] is None else p["n_train"]
        if n_train < 1 or n_train + p["n_val"] > len(y_tr):
            raise UserError(f"dataset 'mnist': n_train={p['n_train']} + n_val={p['n_val']} "
                            f"exceeds the {len(y_tr)} distinct training images")
        (x_tr, y_tr), val = _split_off(self.rng(), x_tr, y_tr, p["n_val"])
        return {"train": _tensors(x_tr[:n_train], y_tr[:n_train]), "val": _tensors(*val),
                "test": _tensors(x_te, y_te)}

    def build_spec(self) -> DatasetSpec:
        return DatasetSpec(
            name=self.name, version=self.version, task=TaskType.MULTICLASS, num_outputs=10,
            views=(ViewSpec(Modality.IMAGE, (1, 28, 28)), ViewSpec(Modality.VECTOR, (784,))),
            description="MNIST handwritten digits", params=self.params)

    def make_view(self, raw: dict[str, torch.Tensor], modality: Modality) -> torch.Tensor:
        x = raw["x"].float() / 255
        return x.unsqueeze(1) if modality is Modality.IMAGE else x.flatten(1)
