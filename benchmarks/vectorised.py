"""Several seeds of one cell trained as one vectorised model (torch.func), for models so
small that per-step overhead, not arithmetic, sets the pace.

    outs = train_seeds_vectorised(cells, dm, options)  # cells differ only in seed

Each seed's backbone is built as the runner builds it (seed_everything, then the
factory), so initial weights are the plain path's. The backbones are stacked with
`torch.func.stack_module_state` and called through `functional_call` under `vmap`. At
every step each seed takes its own minibatch, in the order its own `TensorBatches` gives
the plain path (the permutation per (seed, epoch)); the loss is the sum over seeds of
each seed's mean loss, so seed s gets the gradient of its own loss. Adam, AdamW and SGD
(weight decay included, decoupled or not) act elementwise, so one optimiser over the
stacked tensors is S independent optimisers. Validation, best weights, early stopping
and testing follow the plain path seed by seed (`BestWeights`, Lightning's
`EarlyStopping`). A seed whose patience ran out leaves the stack, so later epochs cost
only the seeds still training.

Agreement with the plain path is to float rounding, not bitwise: under vmap a linear
layer is bmm then add (not addmm) and losses decompose into other kernels, so weights
differ by ~1e-9 after a step. Where predictions stay clear of the decision boundary,
metrics and best epochs agree exactly (tests/test_vectorised.py). Where a model sits at
chance (parity n=32), or a parameter's gradient is pure rounding (a bias before batch
norm), Adam scales rounding differences up to steps of size lr; there a one-ulp change
of the plain path's own initial weights moves test metrics just as far.

Where it pays: on CPU a batched matmul costs what S matmuls cost, so only the per-step
overhead is saved, and vmap adds some back. `python -m benchmarks.perf.vectorised`
measures it: a width-32 MLP gains at 3 seeds and more; a width-256 MLP is arithmetic-
bound and loses a little. Models, views and budgets that cannot run here are named by
`supports_vectorised`; train those cells one by one.

Times: each record's train_s and eval_s are the joint wall time shared evenly over the
seeds (so summing records gives the machine time); the joint times are in details. A
budget's max_time_s caps the joint run at S times the cap, so a suite's time bound is
unchanged; it is checked at epoch ends, where the plain path with its default chunk (a
whole epoch per Lightning step) checks it too. How many epochs a capped run reaches
depends on the machine and the load, on either path.
"""

from __future__ import annotations

import copy
import functools
import math
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from . import registry
from .contract import DatasetSpec, Modality, TaskType, choose_view
from .data import MathDataModule, TensorBatches
from .evaluation import build_metrics, metric_inputs, shape_outputs, task_loss
from .module import call_backbone
from .records import uses_gpu
from .runner import Cell, RunOptions, count_params, model_setup, stop_reason
from .trainer import OPTIMIZERS, TrainBudget


class NotVectorisable(ValueError):
    """These cells cannot share one vectorised run; train them one by one."""


# -- what can be vectorised ------------------------------------------------------------
def supports_vectorised(model_name: str, spec: DatasetSpec,
                        hparams: Mapping[str, Any] | None = None,
                        budget: TrainBudget | None = None) -> str | None:
    """Why `model_name` on `spec` cannot train vectorised, or None if it can. With
    hparams (as the factory gets them) the model is built and one vectorised training
    step on a dummy batch is checked against the plain model; without, only the
    model kind and view are checked."""
    entry = registry.get_model_entry(model_name)
    if entry.kind != "neural":
        return f"model {model_name!r} is fitted, not trained by steps"
    view = spec.view or choose_view(spec, entry.modalities)
    if view is None:
        return f"model {model_name!r} has no view of dataset {spec.name!r}"
    if view is Modality.GRAPH:
        return "graph batches (torch_geometric Batch) differ in size per seed; no stack to vmap"
    if budget is not None:
        if budget.precision not in ("32-true", "32"):
            return f"precision {budget.precision!r}: only 32-true is vectorised"
        if budget.compile:
            return f"compile {budget.compile!r}: vectorised seeds run uncompiled"
    if hparams is None:
        return None
    spec = spec.for_view(view)
    key = (model_name, spec.name, repr(sorted(spec.params.items())), view,
           repr(sorted(hparams.items())))
    if key not in _PROBED:
        _PROBED[key] = _probe(model_name, spec, dict(hparams))
    return _PROBED[key]


_PROBED: dict[tuple, str | None] = {}


def _probe(model_name: str, spec: DatasetSpec, hparams: dict[str, Any]) -> str | None:
    """Two stacked copies of the model against the same copies called one by one, on a
    dummy batch: eval outputs, one train-mode loss, and the buffers after it. Catches
    what vmap cannot batch (data-dependent shapes, .item(), packed sequences), random
    layers (vmap's masks would not be the plain path's), and batch norm statistics
    that are not updated as the plain model updates them."""
    with torch.random.fork_rng(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # vmap's slow-fallback notes: not for a probe
        torch.manual_seed(0)
        nets = [registry.create_model(model_name, spec, **hparams) for _ in range(2)]
        inputs, target = _dummy_inputs(spec, rows=4), _dummy_target(spec, rows=4)
        stack = SeedStack(nets, spec, TrainBudget(), torch.device("cpu"))  # copies
        plain_out, plain_loss = [], []
        for net in nets:
            with torch.no_grad():
                plain_out.append(shape_outputs(call_backbone(net.eval(), inputs), spec))
                out = shape_outputs(call_backbone(net.train(), inputs), spec)
                plain_loss.append(task_loss(out, target, spec))
        try:
            got = stack.outputs(inputs)
            losses = stack.train_step(_map_inputs(lambda *xs: torch.stack(xs), [inputs] * 2),
                                      torch.stack([target] * 2))
        except Exception as exc:  # whatever vmap refuses, the model runs plainly
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            if "random operation" in first:
                return (f"model {model_name!r} draws random numbers in training (dropout): "
                        "under vmap its masks would not be the plain path's")
            if ".item()" in first:
                return (f"model {model_name!r} reads tensor values into Python (a shape that "
                        "depends on the batch), which torch.vmap cannot batch")
            return f"model {model_name!r} does not train under torch.vmap: {first[:160]}"
    close = functools.partial(torch.allclose, rtol=1e-4, atol=1e-5, equal_nan=True)
    if not (close(got, torch.stack(plain_out)) and close(losses, torch.stack(plain_loss))):
        return f"model {model_name!r}: outputs under torch.vmap differ from the plain model's"
    for i, net in enumerate(nets):
        for name, buf in net.named_buffers():
            if buf.is_floating_point() and not close(buf, stack.buffers[name][i]):
                return f"model {model_name!r}: buffer {name!r} is not updated under torch.vmap"
    return None


def _dummy_inputs(spec: DatasetSpec, rows: int) -> Any:
    shape = (rows, *spec.input_shape)
    if spec.modality is Modality.SEQUENCE:
        return torch.randint(1, spec.vocab_size or 2, shape)
    if spec.modality is Modality.SET:
        return {"x": torch.randn(shape), "mask": torch.ones(shape[:2], dtype=torch.bool)}
    return torch.randn(shape)


def _dummy_target(spec: DatasetSpec, rows: int) -> torch.Tensor:
    k = spec.num_outputs
    if spec.task is TaskType.MULTICLASS:
        return torch.randint(0, k, (rows,))
    if spec.task is TaskType.MULTILABEL:
        return torch.randint(0, 2, (rows, k)).float()
    if spec.task is TaskType.BINARY:
        return torch.randint(0, 2, (rows,)).float()
    return torch.randn(rows) if k == 1 else torch.randn(rows, k)


def _map_inputs(fn: Any, items: list[Any]) -> Any:
    """fn over tensors, or over each key of dict inputs (the set view)."""
    if isinstance(items[0], Mapping):
        return {k: fn(*(it[k] for it in items)) for k in items[0]}
    return fn(*items)


# -- S backbones as one ------------------------------------------------------------------
class SeedStack:
    """S backbones of one architecture as stacked tensors with one optimiser; rows (seeds)
    can be dropped when they stop."""

    def __init__(self, backbones: list[nn.Module], spec: DatasetSpec, budget: TrainBudget,
                 device: torch.device, target_mean: float = 0.0, target_std: float = 1.0) -> None:
        params, buffers = torch.func.stack_module_state(backbones)
        self.params = {k: v.detach().to(device).requires_grad_() for k, v in params.items()}
        self.buffers = {k: v.to(device) for k, v in buffers.items()}
        # A real copy, not a meta one: some models keep plain tensor attributes.
        self.template = copy.deepcopy(backbones[0]).to(device)
        self.spec, self.budget, self.device = spec, budget, device
        self.regression = spec.task is TaskType.REGRESSION
        # The same float32 scalars as BenchModule's target_mean / target_std buffers.
        self.mean = torch.tensor(float(target_mean), device=device)
        self.std = torch.tensor(float(target_std) or 1.0, device=device)
        self.opt = self._optimizer(list(self.params.values()))
        self._metrics: list[Any] = []  # one MetricCollection per seed, reset after use

    def _optimizer(self, tensors: list[torch.Tensor]) -> torch.optim.Optimizer:
        # As BenchModule.configure_optimizers (constructor defaults otherwise).
        return OPTIMIZERS[self.budget.optimizer](tensors, lr=self.budget.train_lr,
                                                 weight_decay=self.budget.weight_decay)

    @property
    def size(self) -> int:
        return next(iter(self.params.values())).shape[0]

    def _call(self, params: dict, buffers: dict, inputs: Any) -> torch.Tensor:
        if isinstance(inputs, Mapping):  # as benchmarks.module.call_backbone
            out = torch.func.functional_call(self.template, (params, buffers), (), dict(inputs))
        else:
            out = torch.func.functional_call(self.template, (params, buffers), (inputs,))
        return shape_outputs(out, self.spec)

    def _seed_loss(self, params: dict, buffers: dict, inputs: Any,
                   target: torch.Tensor) -> torch.Tensor:
        out = self._call(params, buffers, inputs)
        if self.regression:
            target = (target - self.mean) / self.std
        return task_loss(out, target, self.spec)

    def train_step(self, inputs: Any, target: torch.Tensor) -> torch.Tensor:
        """One optimiser step of every seed on its own minibatch (inputs and target
        stacked on a leading seed axis); returns the S minibatch losses."""
        self.template.train()
        losses = torch.vmap(self._seed_loss, randomness="error")(
            self.params, self.buffers, inputs, target)
        self.opt.zero_grad(set_to_none=True)
        losses.sum().backward()  # d(sum)/d(loss_s) = 1: each seed keeps its own gradient
        self.opt.step()
        return losses.detach()

    @torch.no_grad()
    def outputs(self, inputs: Any, params: dict | None = None,
                buffers: dict | None = None) -> torch.Tensor:
        """(S, B, ...) eval-mode outputs in target units of every seed on the same inputs."""
        self.template.eval()
        out = torch.vmap(self._call, in_dims=(0, 0, None), randomness="error")(
            self.params if params is None else params,
            self.buffers if buffers is None else buffers, inputs)
        return out * self.std + self.mean if self.regression else out

    def row(self, i: int) -> dict[str, torch.Tensor]:
        """A copy of seed i's parameters and buffers."""
        return {k: v[i].detach().clone() for k, v in {**self.params, **self.buffers}.items()}

    def keep(self, rows: list[int]) -> None:
        """Drop every seed not in `rows`, optimiser state included."""
        idx = torch.tensor(rows, device=self.device)
        old_size = self.size
        new = {k: v.detach()[idx].clone().requires_grad_() for k, v in self.params.items()}
        opt = self._optimizer(list(new.values()))
        for old_t, new_t in zip(self.params.values(), new.values(), strict=True):
            state = self.opt.state.get(old_t)
            if state:  # step counters are 0-d and shared by all seeds: kept as they are
                opt.state[new_t] = {
                    k: v[idx].clone() if isinstance(v, torch.Tensor) and v.dim()
                    and v.shape[0] == old_size else v for k, v in state.items()}
        self.params, self.opt = new, opt
        self.buffers = {k: v[idx].clone() for k, v in self.buffers.items()}

    def evaluate(self, loader: TensorBatches, params: dict | None = None,
                 buffers: dict | None = None) -> list[dict[str, float]]:
        """The task's torchmetrics of each seed on one split, batch by batch as the
        plain path's validation and test steps update them."""
        params = self.params if params is None else params
        seeds = next(iter(params.values())).shape[0]
        while len(self._metrics) < seeds:  # built once: a MetricCollection costs ~1 ms
            self._metrics.append(build_metrics(self.spec).to(self.device))
        metrics = self._metrics[:seeds]
        for inputs, target in loader:
            inputs, target = _to(inputs, self.device), target.to(self.device)
            out = self.outputs(inputs, params, buffers)
            for s, m in enumerate(metrics):
                m.update(*metric_inputs(out[s], target, self.spec))
        values = [{k: float(v) for k, v in m.compute().items()} for m in metrics]
        for m in metrics:
            m.reset()
        return values


def gather_rows(data: Any, idx: torch.Tensor) -> Any:
    """Rows idx (S, B) of a tensor, or of each tensor of dict inputs, as (S, B, ...).
    index_select on the flattened rows: on CPU about ten times faster than t[idx]."""
    return _map_inputs(lambda t: t.index_select(0, idx.reshape(-1)).unflatten(0, idx.shape),
                       [data])


def _to(inputs: Any, device: torch.device) -> Any:
    if isinstance(inputs, Mapping):
        return {k: v.to(device) for k, v in inputs.items()}
    return inputs.to(device)


# -- one seed's bookkeeping, as BestWeights and EarlyStopping keep it ---------------------
@dataclass
class SeedRun:
    cell: Cell
    permutations: TensorBatches  # this seed's shuffled row numbers, one batch an epoch
    sign: float                                  # +1 when higher is better
    best_score: float = -math.inf                # BestWeights: sign * best finite value
    best_epoch: int = -1
    best_metrics: dict[str, float] = field(default_factory=dict)
    best_state: dict[str, torch.Tensor] | None = None
    stop_score: float = -math.inf                # EarlyStopping: its own best (NaN never wins)
    wait: int = 0
    epochs: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    failed: str | None = None                    # "diverged: ..." as the runner words it
    done: bool = False
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)

    def end_epoch(self, epoch: int, mean_loss: float, val: dict[str, float], monitor: str,
                  patience: int, state: Any) -> None:
        """The plain path's order: BestWeights on validation end, then the divergence check
        and EarlyStopping at train epoch end."""
        value = val.get(monitor, math.nan)
        if math.isfinite(value) and self.sign * value > self.best_score:
            self.best_score, self.best_epoch = self.sign * value, epoch
            self.best_metrics = dict(val)
            self.best_state = state()
        if not math.isfinite(mean_loss):
            self.failed = f"diverged: training loss became {mean_loss} at epoch {epoch}"
            self.done = True
            return
        row = {"epoch": epoch, "train/loss": round(mean_loss, 6)}
        row.update({f"val/{k}": round(v, 6) for k, v in val.items()})
        self.history.append(row)
        self.epochs = epoch + 1
        if patience > 0:
            if self.sign * value > self.stop_score:  # False for NaN, as torch.gt
                self.stop_score, self.wait = self.sign * value, 0
            else:
                self.wait += 1
                self.done = self.wait >= patience


# -- the entry point -------------------------------------------------------------------------
def check_group(cells: list[Cell]) -> None:
    """Cells may share a vectorised run only when they differ in nothing but the seed."""
    if not cells:
        raise NotVectorisable("no cells to train")
    first = cells[0]
    for c in cells[1:]:
        if (c.suite, c.dataset, c.model, c.budget) != (first.suite, first.dataset, first.model,
                                                       first.budget):
            raise NotVectorisable(f"{c.label} differs from {first.label} in more than the seed")
    seeds = [c.seed for c in cells]
    if len(set(seeds)) != len(seeds):
        raise NotVectorisable(f"seeds repeat in one vectorised group: {seeds}")


def device_for(options: RunOptions) -> torch.device:
    if options.devices not in (1, "1") or options.num_nodes != 1 or \
            options.strategy not in ("auto", "single_device"):
        raise NotVectorisable("vectorised seeds run on one device (devices=1, one node)")
    if options.accelerator in ("gpu", "cuda") or uses_gpu(options.accelerator):
        return torch.device("cuda")
    return torch.device("cpu")


def train_seeds_vectorised(cells: list[Cell], dm: MathDataModule,
                           options: RunOptions) -> list[dict[str, Any]]:
    """Train cells that differ only in seed as one vectorised model. Returns, per cell in
    order, what runner._train_neural returns (metrics, epochs, best_epoch, train_s,
    eval_s, samples_per_s, history) plus n_params and details; a seed whose loss
    diverged has `failed` set (the runner's reason) and no metrics. Raises
    NotVectorisable when the cells cannot share a run (see supports_vectorised)."""
    import lightning as L

    check_group(cells)
    device = device_for(options)
    cell0, budget = cells[0], cells[0].budget
    _, view, spec, given = model_setup(cell0, dm)
    reason = supports_vectorised(cell0.model.name, spec, given, budget)
    if reason:
        raise NotVectorisable(reason)
    dm.prepare_data()
    dm.setup("fit")
    dm.configure(view=view, batch_size=budget.train_batch_size, seed=cell0.seed)
    backbones = []
    for cell in cells:  # as run_cell: the same seed, then the same factory call
        L.seed_everything(cell.seed, workers=False, verbose=False)
        backbones.append(registry.create_model(cell.model.name, spec, **given))
    mean, std = dm.target_stats() if spec.task is TaskType.REGRESSION else (0.0, 1.0)
    stack = SeedStack(backbones, spec, budget, device, mean, std)
    train_x, train_y = _to(dm.inputs("train"), device), dm.target("train").to(device)
    rows = torch.arange(len(train_y))
    sign = 1.0 if spec.higher_is_better else -1.0
    # A whole-split batch of row numbers is the epoch's permutation, exactly as the plain
    # path's TensorBatches draws it for that seed and epoch (it depends on neither the
    # batch size nor the data); minibatches are its consecutive slices, as there.
    runs = [SeedRun(c, TensorBatches(rows, rows, len(rows), shuffle=True, seed=c.seed), sign)
            for c in cells]
    active = list(runs)  # seeds still training, in the stack's row order

    t0 = time.perf_counter()
    for epoch in range(budget.max_epochs):
        order = torch.stack([next(iter(r.permutations))[1] for r in active]).to(device)  # (S, n)
        loss_sum, steps = torch.zeros(len(active), device=device), 0
        for start in range(0, len(rows), budget.train_batch_size):  # each seed its own minibatch
            idx = order[:, start:start + budget.train_batch_size]
            inputs, target = gather_rows(train_x, idx), gather_rows(train_y, idx)
            loss_sum += stack.train_step(inputs, target)
            steps += 1
        mean_loss = (loss_sum / max(steps, 1)).tolist()
        vals = stack.evaluate(dm.loader("val"))
        for i, r in enumerate(active):
            r.end_epoch(epoch, mean_loss[i], vals[i], spec.metric, budget.patience,
                        functools.partial(stack.row, i))
        out_of_time = budget.max_time_s > 0 and \
            time.perf_counter() - t0 >= budget.max_time_s * len(cells)  # the S caps pooled
        last = out_of_time or epoch == budget.max_epochs - 1
        for i, r in enumerate(active):
            r.done = r.done or last
            if r.done and r.failed is None and r.best_state is None:
                r.best_state = stack.row(i)  # BestWeights never fired: test the last weights
        keep = [i for i, r in enumerate(active) if not r.done]
        if len(keep) < len(active):
            active = [active[i] for i in keep]
            if not active:
                break
            stack.keep(keep)
    train_s = time.perf_counter() - t0

    t1 = time.perf_counter()
    tested = [r for r in runs if r.failed is None]
    for r in tested:
        r.metrics = {"val": r.best_metrics}
    if tested:  # every seed at its own best weights, in one stack
        params = {k: torch.stack([r.best_state[k] for r in tested]) for k in stack.params}
        buffers = {k: torch.stack([r.best_state[k] for r in tested]) for k in stack.buffers}
        for split in (s for s in ("test", "ood_test") if s in dm.splits):
            values = stack.evaluate(dm.loader(split), params, buffers)
            for r, seed_values in zip(tested, values, strict=True):
                r.metrics[split] = seed_values
    eval_s = time.perf_counter() - t1

    n_train = dm.split_size("train")
    share_train, share_eval = train_s / len(cells), eval_s / len(cells)
    details = {"vectorised": {"seeds": [c.seed for c in cells], "joint_train_s": train_s,
                              "joint_eval_s": eval_s}}
    n_params = count_params(backbones[0])
    # A failed seed reports what a failed plain record holds: no metrics, epochs or history.
    return [{"metrics": r.metrics, "epochs": 0 if r.failed else r.epochs,
             "best_epoch": None if r.failed else r.best_epoch,
             "train_s": share_train, "eval_s": share_eval,
             "samples_per_s": n_train * max(r.epochs, 1) / max(share_train, 1e-9),
             "history": [] if r.failed else r.history, "n_params": n_params,
             "stopped_by": None if r.failed else stop_reason(
                 r.epochs, budget, budget.patience > 0 and r.wait >= budget.patience),
             "details": details, "failed": r.failed} for r in runs]
