"""Several seeds of one cell trained as one stacked model (torch.func), for models so
small that per-step overhead, not arithmetic, sets the pace.

    outcomes = train_stacked(model, hparams, seeds, dm, spec, budget, hardware)

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
`stack_problem`; train those cells one by one.

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
import time
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .. import registry
from ..contract import DatasetSpec, Modality, TaskType, choose_view
from ..data import MathDataModule, TensorBatches
from .budget import TrainBudget
from .evaluation import (
    NonFiniteOutputs,
    build_metrics,
    check_finite,
    metric_inputs,
    shape_outputs,
    task_loss,
    training_loss,
)
from .hardware import Hardware
from .module import call_backbone
from .neural import count_params
from .outcome import TrainOutcome, stop_reason
from .selection import Selection
from .trainer import optimizer_class


class NotStackable(ValueError):
    """These cells cannot share one vectorised run; train them one by one."""


# -- what can be vectorised ------------------------------------------------------------
def stack_problem(model_name: str, spec: DatasetSpec,
                  hparams: Mapping[str, Any] | None = None,
                  budget: TrainBudget | None = None) -> str | None:
    """Why `model_name` on `spec` cannot train stacked, or None if it can. With
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
        return optimizer_class(self.budget.optimizer)(tensors, lr=self.budget.train_lr,
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
        return training_loss(self._call(params, buffers, inputs), target, self.spec,
                             self.mean, self.std)

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

    def evaluate(self, loader: TensorBatches, split: str, params: dict | None = None,
                 buffers: dict | None = None) -> list[dict[str, Any]]:
        """The task's torchmetrics of each seed on one split, batch by batch as the
        plain path's validation and test steps update them. A seed whose outputs are not
        all finite gets {"__non_finite__": why} instead (its cell fails, as on the plain
        path)."""
        params = self.params if params is None else params
        seeds = next(iter(params.values())).shape[0]
        while len(self._metrics) < seeds:  # built once: a MetricCollection costs ~1 ms
            self._metrics.append(build_metrics(self.spec).to(self.device))
        metrics = self._metrics[:seeds]
        bad: list[str | None] = [None] * seeds
        for inputs, target in loader:
            inputs, target = _to(inputs, self.device), target.to(self.device)
            out = self.outputs(inputs, params, buffers)
            for s, m in enumerate(metrics):
                try:
                    check_finite(out[s], split)
                except NonFiniteOutputs as exc:
                    bad[s] = bad[s] or f"{type(exc).__name__}: {exc}"  # as the plain reason
                    continue
                m.update(*metric_inputs(out[s], target, self.spec))
        values = [{"__non_finite__": b} if b else {k: float(v) for k, v in m.compute().items()}
                  for m, b in zip(metrics, bad, strict=True)]
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


# -- the entry point -------------------------------------------------------------------------
def device_for(hardware: Hardware) -> torch.device:
    """The one device a stack trains on; NotStackable for multi-device runs."""
    if hardware.devices != 1 or hardware.num_nodes != 1 or \
            hardware.strategy not in ("auto", "single_device"):
        raise NotStackable("stacked seeds run on one device (devices=1, one node)")
    return torch.device("cuda") if hardware.on_gpu or hardware.accelerator in ("gpu", "cuda") \
        else torch.device("cpu")


def train_stacked(model_name: str, hparams: dict[str, Any], seeds: list[int],
                  dm: MathDataModule, spec: DatasetSpec, budget: TrainBudget,
                  hardware: Hardware) -> list[TrainOutcome]:
    """Train the seeds of one (dataset, model, hparams, budget) as one stacked model; one
    TrainOutcome per seed, in order (a seed that diverged or gave non-finite outputs has
    `failed` set and no metrics). `dm` is set up and configured for the view by the
    caller. Raises NotStackable when the seeds cannot share a run (see stack_problem)."""
    import lightning as L

    if len(set(seeds)) != len(seeds) or not seeds:
        raise NotStackable(f"seeds must be distinct and non-empty, got {seeds}")
    device = device_for(hardware)
    reason = stack_problem(model_name, spec, hparams, budget)
    if reason:
        raise NotStackable(reason)
    backbones = []
    for seed in seeds:  # as the plain path: the same seed, then the same factory call
        L.seed_everything(seed, workers=False, verbose=False)
        backbones.append(registry.create_model(model_name, spec, **hparams))
    mean, std = dm.target_stats() if spec.task is TaskType.REGRESSION else (0.0, 1.0)
    stack = SeedStack(backbones, spec, budget, device, mean, std)
    train_x, train_y = _to(dm.inputs("train"), device), dm.target("train").to(device)
    rows = torch.arange(len(train_y))
    # A whole-split batch of row numbers is the epoch's permutation, exactly as the plain
    # path's TensorBatches draws it for that seed and epoch (it depends on neither the
    # batch size nor the data); minibatches are its consecutive slices, as there.
    perms = [TensorBatches(rows, rows, len(rows), shuffle=True, seed=s) for s in seeds]
    runs = [Selection(spec.metric, spec.higher_is_better, budget.patience) for _ in seeds]
    failed: list[str | None] = [None] * len(seeds)
    active = list(range(len(seeds)))  # members still training, in the stack's row order

    t0 = time.perf_counter()
    for epoch in range(budget.max_epochs):
        order = torch.stack([next(iter(perms[m]))[1] for m in active]).to(device)  # (S, n)
        loss_sum, steps = torch.zeros(len(active), device=device), 0
        for start in range(0, len(rows), budget.train_batch_size):  # each its own minibatch
            idx = order[:, start:start + budget.train_batch_size]
            loss_sum += stack.train_step(gather_rows(train_x, idx), gather_rows(train_y, idx))
            steps += 1
        mean_loss = (loss_sum / max(steps, 1)).tolist()
        vals = stack.evaluate(dm.loader("val"), "val")
        done = []
        for i, m in enumerate(active):
            problem = vals[i].pop("__non_finite__", None)
            stop = runs[m].end_epoch(epoch, mean_loss[i], vals[i],
                                     functools.partial(stack.row, i), problem)
            failed[m] = runs[m].failed
            done.append(stop)
        out_of_time = budget.max_time_s > 0 and \
            time.perf_counter() - t0 >= budget.max_time_s * len(seeds)  # the S caps pooled
        last = out_of_time or epoch == budget.max_epochs - 1
        for i, m in enumerate(active):
            if (done[i] or last) and failed[m] is None and runs[m].best_state is None:
                runs[m].best_state = stack.row(i)  # never a finite best: test the last weights
        keep = [i for i, d in enumerate(done) if not d and not last]
        if len(keep) < len(active):
            active = [active[i] for i in keep]
            if not active:
                break
            stack.keep(keep)
    train_s = time.perf_counter() - t0

    t1 = time.perf_counter()
    tested = [m for m in range(len(seeds)) if failed[m] is None]
    metrics: dict[int, dict[str, dict[str, float]]] = {m: {"val": runs[m].best_metrics}
                                                       for m in tested}
    if tested:  # every member at its own best weights, in one stack
        params = {k: torch.stack([runs[m].best_state[k] for m in tested]) for k in stack.params}
        buffers = {k: torch.stack([runs[m].best_state[k] for m in tested])
                   for k in stack.buffers}
        for split in (s for s in ("test", "ood_test") if s in dm.splits):
            values = stack.evaluate(dm.loader(split), split, params, buffers)
            for m, member_values in zip(tested, values, strict=True):
                if "__non_finite__" in member_values:
                    failed[m] = member_values["__non_finite__"]
                else:
                    metrics[m][split] = member_values
    eval_s = time.perf_counter() - t1

    n_train = dm.split_size("train")
    share_train, share_eval = train_s / len(seeds), eval_s / len(seeds)
    details = {"vectorised": {"seeds": list(seeds), "joint_train_s": train_s,
                              "joint_eval_s": eval_s}}
    n_params = count_params(backbones[0])
    outcomes = []
    for m, run in enumerate(runs):
        ok = failed[m] is None
        # A failed member reports what a failed plain record holds: no metrics or history.
        outcomes.append(TrainOutcome(
            metrics=metrics.get(m, {}) if ok else {}, epochs=run.epochs if ok else 0,
            best_epoch=run.best_epoch if ok else None,
            stopped_by=stop_reason(run.epochs, budget.max_epochs, run.stopped_early)
            if ok else None,
            train_s=share_train, eval_s=share_eval,
            samples_per_s=n_train * max(run.epochs, 1) / max(share_train, 1e-9),
            history=run.history if ok else [], details=details, n_params=n_params,
            failed=failed[m]))
    return outcomes
