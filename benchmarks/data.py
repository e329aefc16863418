"""The base datamodule and the whole-tensor batch loader every dataset shares.

A dataset subclasses `MathDataModule`, declares typed constructor parameters (checked by
the registry, validated in `__init__`), and implements three methods:

    generate()        -> {split: {array name: tensor}}   raw data, deterministic
    build_spec()      -> DatasetSpec                     what models may know
    make_view(raw, m) -> inputs for view m               tensor / dict / graph store

The base class caches `generate()` on disk under name, version and parameters, hashes the
content, and serves each split through `TensorBatches`: a seeded permutation sliced into
batches, indexing whole tensors (no per-sample `__getitem__`, no `default_collate`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import numpy as np
import torch

from .contract import ONEHOT, DatasetSpec, Modality
from .errors import UserError

SPLITS = ("train", "val", "test", "ood_test")


from .cache import cache_dir  # noqa: E402  (plugins and tests import it from here)


# -- parameter validation helpers for datamodule constructors -------------------------
def check_range(name: str, value: float, lo: float | None = None, hi: float | None = None,
                dataset: str = "", zero_means: str = "") -> None:
    """One-line UserError naming the parameter and its accepted range. With `zero_means`,
    0 is accepted too, as the off switch it names ("no OOD split")."""
    if zero_means and value == 0:
        return
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        lo_s = "-inf" if lo is None else f"{lo:g}"
        hi_s = "inf" if hi is None else f"{hi:g}"
        where = f"dataset {dataset!r}: " if dataset else ""
        zero = f"0 ({zero_means}) or " if zero_means else ""
        raise UserError(f"{where}parameter {name}={value!r} is out of range; "
                        f"accepted: {zero}{lo_s} <= {name} <= {hi_s}")


def check_split_sizes(dataset: str, n_train: int, n_val: int, n_test: int, lo: int = 1,
                      hi: int = 10_000_000) -> None:
    """check_range on each of n_train, n_val and n_test."""
    for key, value in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        check_range(key, value, lo, hi, dataset=dataset)


def check_choice(name: str, value: Any, choices: tuple[Any, ...], dataset: str = "") -> None:
    if value not in choices:
        where = f"dataset {dataset!r}: " if dataset else ""
        raise UserError(f"{where}parameter {name}={value!r} is not accepted; "
                        f"choose one of {', '.join(map(repr, choices))}")


# -- batching ---------------------------------------------------------------------------
def num_rows(inputs: Any) -> int:
    if isinstance(inputs, torch.Tensor):
        return int(inputs.shape[0])
    if isinstance(inputs, Mapping):
        return num_rows(next(iter(inputs.values())))
    return len(inputs)


def take_rows(inputs: Any, idx: torch.Tensor | slice) -> Any:
    """Rows `idx` of a tensor, of each tensor in a dict, or of a store with `.take`."""
    if isinstance(inputs, torch.Tensor):
        # index_select is ~10x faster than fancy indexing for a row gather on CPU
        return inputs[idx] if isinstance(idx, slice) else inputs.index_select(0, idx)
    if isinstance(inputs, Mapping):
        return {k: take_rows(v, idx) for k, v in inputs.items()}
    if isinstance(idx, slice):
        idx = torch.arange(num_rows(inputs))[idx]
    return inputs.take(idx)


class BatchChunk(list):
    """Several consecutive training minibatches delivered as one Lightning batch (the
    shared LightningModule takes one optimiser step per minibatch)."""


class TensorBatches:
    """An epoch-seeded iterable of (inputs, target) batches over in-memory data.

    Each pass draws a fresh permutation from a generator seeded by (seed, epoch), so a
    run is reproducible and resuming at epoch k gives the same batches. Under
    torch.distributed each rank takes a strided shard of the permutation without
    padding, so that evaluation counts every sample exactly once.
    """

    def __init__(self, inputs: Any, target: torch.Tensor, batch_size: int, shuffle: bool,
                 seed: int = 0, drop_last: bool = False, chunk: int = 1) -> None:
        self.inputs, self.target = inputs, target
        self.batch_size, self.shuffle, self.seed = int(batch_size), shuffle, int(seed)
        self.drop_last = drop_last
        self.chunk = max(1, int(chunk))  # minibatches per yielded item (BatchChunk if > 1)
        self.epoch = 0
        self.n = num_rows(inputs)

    def _shard(self) -> tuple[int, int]:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def _local_rows(self) -> int:
        rank, world = self._shard()
        return len(range(rank, self.n, world))

    def num_batches(self) -> int:
        rows = self._local_rows()
        if self.drop_last and rows >= self.batch_size:
            return rows // self.batch_size
        return max(1, math.ceil(rows / self.batch_size))

    def __len__(self) -> int:
        return math.ceil(self.num_batches() / self.chunk)

    def __iter__(self) -> Iterator[Any]:
        if self.chunk == 1:
            yield from self._batches()
            return
        chunk = BatchChunk()
        for batch in self._batches():
            chunk.append(batch)
            if len(chunk) == self.chunk:
                yield chunk
                chunk = BatchChunk()
        if chunk:
            yield chunk

    def _batches(self) -> Iterator[tuple[Any, torch.Tensor]]:
        rank, world = self._shard()
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.n, generator=g)
        else:
            order = None
        self.epoch += 1
        if world > 1:
            base = order if order is not None else torch.arange(self.n)
            order = base[rank::world]
        rows = self.n if order is None else len(order)
        stop = rows - rows % self.batch_size if self.drop_last and rows >= self.batch_size else rows
        for start in range(0, stop, self.batch_size):
            end = min(start + self.batch_size, rows)
            idx: Any = slice(start, end) if order is None else order[start:end]
            yield take_rows(self.inputs, idx), take_rows(self.target, idx)


# -- the base datamodule ----------------------------------------------------------------
def _hash_tensors(raw: Mapping[str, Mapping[str, torch.Tensor]]) -> str:
    h = hashlib.sha256()
    for split in sorted(raw):
        for key in sorted(raw[split]):
            t = raw[split][key].detach().cpu().contiguous()
            h.update(f"{split}/{key}/{t.dtype}/{tuple(t.shape)}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


@functools.cache
def code_fingerprint(cls: type) -> str:
    """A short hash of the source files of a datamodule class and of its bases outside
    Lightning (this file included): what generates the data."""
    h = hashlib.sha256()
    for klass in cls.__mro__:
        module = sys.modules.get(klass.__module__)
        path = getattr(module, "__file__", None)
        if path and not klass.__module__.startswith(("lightning", "builtins", "torch")):
            try:
                h.update(Path(path).read_bytes())
            except OSError:
                h.update(klass.__qualname__.encode())
    return h.hexdigest()[:10]


def _param_slug(params: Mapping[str, Any]) -> str:
    text = ",".join(f"{k}={params[k]}" for k in sorted(params))
    slug = re.sub(r"[^A-Za-z0-9=,._-]", "", text)[:80]
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()
    return f"{slug}-{digest[:10]}"


class MathDataModule(L.LightningDataModule):
    """Base of every dataset: deterministic generation, disk cache, hash, views, loaders."""

    name: ClassVar[str] = ""          # set by @register_dataset
    version: ClassVar[str] = "1"      # bump whenever the generated data would change
    smoke_params: ClassVar[dict[str, Any]] = {}  # a small instance for tests and smoke runs
    unique_inputs: ClassVar[bool] = True  # the splits share no identical input row
    needs_files: ClassVar[bool] = False   # its data are files a user supplies (mnist): the
                                          # generic tests and `mlwm list` need them given

    def __init__(self) -> None:
        super().__init__()
        self._raw: dict[str, dict[str, torch.Tensor]] | None = None
        self._views: dict[tuple[str, Modality], Any] = {}
        self._spec: DatasetSpec | None = None
        self.content_hash = ""
        self.view: str | None = None  # the configured view's key
        self.batch_size = 256
        self.eval_batch_size = 4096
        self.loader_seed = 0
        self.chunk = 1  # training minibatches per Lightning step (see BatchChunk)

    # -- to implement ----------------------------------------------------------------
    def generate(self) -> dict[str, dict[str, torch.Tensor]]:
        """Raw data per split ({"train": {"x": ..., "y": ...}, ...}); deterministic."""
        raise NotImplementedError

    def build_spec(self) -> DatasetSpec:
        raise NotImplementedError

    def make_view(self, raw: dict[str, torch.Tensor], modality: Modality) -> Any:
        """Inputs of one split in one view (see the layouts in benchmarks.contract)."""
        raise NotImplementedError

    def make_target(self, raw: dict[str, torch.Tensor]) -> torch.Tensor:
        return raw["y"]

    def relevant_inputs(self, split: str, modality: Modality) -> torch.Tensor | None:
        """Which inputs of a view are known to matter for the target, as a boolean mask
        broadcastable to (N, K, *view shape): N rows of the split, K outputs, the per-sample
        layout of the view (a graph view: (N, K, nodes of the split)). Shape (1, 1, ...)
        says the same inputs matter for every row and output (sparse parity's hidden bits),
        (1, K, ...) per output (descent i: positions i and i + 1), (N, 1, ...) per row (the
        entry a near-miss table breaks). None (the default): nothing declared for this
        view. A dataset that declares it says so in words in its spec's `ground_truth`."""
        return None

    # -- identity ----------------------------------------------------------------------
    @property
    def params(self) -> dict[str, Any]:
        return dict(self.hparams)

    @property
    def cache_path(self) -> Path:
        """Name, version, parameters and a fingerprint of the generating code: data made by
        other code (an edited generate() whose version was not bumped) is never served."""
        return cache_dir() / (f"{self.name}-v{self.version}-{_param_slug(self.params)}"
                              f"-code{code_fingerprint(type(self))}.pt")

    # -- Lightning hooks ---------------------------------------------------------------
    def prepare_data(self) -> None:
        self._load_or_generate()

    def setup(self, stage: str | None = None) -> None:
        self._load_or_generate()

    def limit_rows(self, rows: Mapping[str, int]) -> MathDataModule:
        """Use a seeded random subset of at most rows[split] rows of each split (a
        suite's `rows`: a large universe at a size 2 cores can train on). The subset is
        drawn with the dataset's data_seed, so it changes with the split; the content
        hash is that of the subset."""
        self._row_limits = dict(rows)
        self._raw, self._views = None, {}
        return self

    def _subsample(self) -> None:
        rows = getattr(self, "_row_limits", None)
        if not rows:
            return
        for i, split in enumerate(SPLITS):
            limit = rows.get(split)
            arrays = self._raw.get(split)
            if not limit or arrays is None:
                continue
            n = num_rows(self.make_target(arrays))
            if n > limit:
                g = torch.Generator().manual_seed(int(self.params.get("data_seed", 0)) * 7919 + i)
                keep = torch.randperm(n, generator=g)[:limit].sort().values
                self._raw[split] = {k: v.index_select(0, keep) if v.shape[:1] == (n,) else v
                                    for k, v in arrays.items()}
        self.content_hash = _hash_tensors(self._raw)

    def drop_cache(self) -> None:
        """Forget the data in memory and on disk, so the next use generates it afresh
        (`--force`)."""
        self._raw, self._views, self.content_hash = None, {}, ""
        self.cache_path.unlink(missing_ok=True)

    def _load_or_generate(self) -> None:
        if self._raw is not None:
            return
        path = self.cache_path
        if path.is_file():
            loaded = self._load_verified(path)
            if loaded is not None:
                self._raw, self.content_hash = loaded
                self._subsample()
                return
            path.unlink(missing_ok=True)  # torn, tampered or of another structure
        raw = self.generate()
        problem = self._structure_problem(raw)
        if problem:
            raise RuntimeError(f"{self.name}.generate() {problem}")
        self._raw = {s: {k: v.contiguous() for k, v in d.items()} for s, d in raw.items()}
        self.content_hash = _hash_tensors(self._raw)
        self._save(path)
        self._subsample()

    def _structure_problem(self, raw: Any) -> str | None:
        """Why `raw` is not this dataset's data layout, or None."""
        if not isinstance(raw, Mapping) or not all(isinstance(d, Mapping) for d in raw.values()):
            return "must return {split: {name: tensor}}"
        unknown = set(raw) - set(SPLITS)
        if unknown or not {"train", "val", "test"} <= set(raw):
            return f"must return train/val/test (and optionally ood_test), got {sorted(raw)}"
        for split, arrays in raw.items():
            if not all(isinstance(t, torch.Tensor) for t in arrays.values()):
                return f"must return tensors; split {split!r} holds other objects"
            try:
                num_rows(self.make_target(arrays))
            except (KeyError, TypeError, IndexError) as exc:
                return f"split {split!r} has no target ({type(exc).__name__}: {exc})"
        return None

    def _load_verified(self, path: Path) -> tuple[dict, str] | None:
        """(raw, content hash) from a cache file whose content still hashes to what it
        says and has this dataset's structure; None otherwise (it is then regenerated)."""
        try:
            blob = torch.load(path, weights_only=True)
            raw, stored = blob["raw"], blob["content_hash"]
            if self._structure_problem(raw) is None and _hash_tensors(raw) == stored:
                return raw, stored
        except Exception:  # unreadable, torn, not ours: never trusted
            pass
        return None

    def _save(self, path: Path) -> None:
        """Write the cache atomically; a failure (a full or read-only disk: torch.save
        raises RuntimeError there, not OSError) costs only regeneration next time."""
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"raw": self._raw, "content_hash": self.content_hash}, tmp)
            os.replace(tmp, path)
        except Exception:
            tmp.unlink(missing_ok=True)

    # -- what the harness reads ----------------------------------------------------------
    @property
    def spec(self) -> DatasetSpec:
        """Built from the parameters alone (no generation), so planning a suite is cheap."""
        if self._spec is None:
            self._spec = self.build_spec()
        return self._spec

    @property
    def splits(self) -> tuple[str, ...]:
        self._load_or_generate()
        return tuple(s for s in SPLITS if s in self._raw)

    def split_size(self, split: str) -> int:
        return num_rows(self.make_target(self._raw_split(split)))

    def _raw_split(self, split: str) -> dict[str, torch.Tensor]:
        self._load_or_generate()
        if split not in self._raw:
            raise KeyError(f"dataset {self.name!r} has no {split!r} split")
        return self._raw[split]

    def inputs(self, split: str, view: Modality | str | None = None) -> Any:
        """One split in one view (by key or modality; default: the configured view)."""
        vs = self.spec.view_spec(view if view is not None else (self.view or
                                                                 self.spec.views[0].key))
        key = (split, vs.key)
        if key not in self._views:
            if vs.encoding == ONEHOT:  # the harness's view of the dataset's own tokens
                self._views[key] = onehot_tokens(self.inputs(split, Modality.SEQUENCE),
                                                 self.spec.view_spec(Modality.SEQUENCE))
            else:
                self._views[key] = self.make_view(self._raw_split(split), vs.modality)
        mask = self.__dict__.get("_input_masks", {}).get(vs.key)
        return self._views[key] * mask if mask is not None else self._views[key]

    def mask_inputs(self, view: Modality | str, mask: torch.Tensor | None) -> None:
        """Multiply every split of a tensor view by `mask` (per-sample shape; None lifts it):
        the other inputs zeroed, to retrain on the most salient ones only (explain)."""
        key = self.spec.view_spec(view).key
        masks = self.__dict__.setdefault("_input_masks", {})
        if mask is None:
            masks.pop(key, None)
        else:
            masks[key] = mask

    def relevant_mask(self, split: str, view: Modality | str) -> torch.Tensor | None:
        """relevant_inputs for any view key: for the one-hot view, the sequence view's mask
        repeated over each position's indicators."""
        vs = self.spec.view_spec(view)
        if vs.encoding == ONEHOT:
            mask = self.relevant_inputs(split, Modality.SEQUENCE)
            if mask is None:
                return None
            vocab = self.spec.view_spec(Modality.SEQUENCE).vocab_size
            return mask.repeat_interleave(vocab - 1, dim=-1)
        return self.relevant_inputs(split, vs.modality)

    def target(self, split: str) -> torch.Tensor:
        return self.make_target(self._raw_split(split))

    def arrays(self, split: str, modality: Modality | str = Modality.VECTOR) -> tuple[np.ndarray, np.ndarray]:
        """(X, y) as numpy for fitted models (scikit-learn, symbolic regression)."""
        x = self.inputs(split, modality)
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{self.name}: the {modality} view is not a single tensor")
        return x.reshape(len(x), -1).float().numpy(), self.target(split).numpy()

    def target_stats(self) -> tuple[float, float]:
        """Mean and std of the training targets (regression targets are standardised)."""
        y = self.target("train").float()
        return float(y.mean()), float(y.std()) if y.numel() > 1 else 1.0

    def configure(self, view: Modality | str | None = None, batch_size: int | None = None,
                  seed: int | None = None, eval_batch_size: int | None = None,
                  chunk: int | None = None) -> MathDataModule:
        """Choose the view and batching for the next run (the runner calls this)."""
        if chunk is not None:
            self.chunk = chunk
        if view is not None:
            self.view = self.spec.view_spec(view).key
        if batch_size is not None:
            self.batch_size = batch_size
        if eval_batch_size is not None:
            self.eval_batch_size = eval_batch_size
        if seed is not None:
            self.loader_seed = seed
        return self

    def loader(self, split: str, shuffle: bool = False) -> TensorBatches:
        bs = self.batch_size if shuffle else self.eval_batch_size
        return TensorBatches(self.inputs(split), self.target(split), bs, shuffle,
                             seed=self.loader_seed, chunk=self.chunk if shuffle else 1)

    def train_dataloader(self) -> TensorBatches:
        return self.loader("train", shuffle=True)

    def val_dataloader(self) -> TensorBatches:
        return self.loader("val")

    def test_dataloader(self) -> TensorBatches:
        return self.loader("test")

    # -- helpers for subclasses ------------------------------------------------------------
    def rng(self, *salt: int) -> np.random.Generator:
        """The data generator: seeded by the dataset's data_seed (fixed per version)."""
        return np.random.default_rng([int(self.params.get("data_seed", 0)), *salt])


def onehot_tokens(tokens: torch.Tensor, seq: Any) -> torch.Tensor:
    """(B, L) tokens -> (B, L * (V - 1)) float: each position's token as indicators of
    the values 1..V-1, position-major; PAD (0) is all zeros."""
    onehot = torch.nn.functional.one_hot(tokens.long(), seq.vocab_size)[..., 1:]
    return onehot.flatten(1).float()


def split_counts(total_needed: Mapping[str, int]) -> dict[str, slice]:
    """Consecutive slices for split sizes given in order ({"train": 100, ...})."""
    out, start = {}, 0
    for split, n in total_needed.items():
        out[split] = slice(start, start + n)
        start += n
    return out


def first_occurrences(rows: np.ndarray) -> np.ndarray:
    """Indices of the first occurrence of each distinct row, in their original order."""
    flat = np.ascontiguousarray(rows.reshape(len(rows), -1))
    # each row as one opaque byte string: a 1-D unique, ~9x faster than unique(axis=0)
    keys = flat.view(np.dtype((np.void, flat.dtype.itemsize * flat.shape[1]))).ravel()
    _, idx = np.unique(keys, return_index=True)
    return np.sort(idx)


def distinct_rows(draw: Callable[[int], np.ndarray], count: int) -> np.ndarray:
    """The first `count` distinct rows of repeated draws, in the order drawn (count >= 1).

    `draw(shortfall)` returns fresh rows, given how many distinct rows are still missing;
    it is called until `count` distinct rows have appeared, repeats dropped after each call.
    """
    out = draw(count)
    out = out[first_occurrences(out)]
    while len(out) < count:
        out = np.concatenate([out, draw(count - len(out))])
        out = out[first_occurrences(out)]
    return out[:count]
