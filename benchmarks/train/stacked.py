"""Several members of one cell trained as one stacked model (torch.func), for models so
small that per-step overhead, not arithmetic, sets the pace: the seeds of a cell, or the
trials of a hyperparameter search that differ only in learning rate and weight decay.

    outcomes = train_stacked(model, hparams, members, dm, spec, budget, hardware)

A member is a `Member(seed, lr=None, weight_decay=None)` (None: the budget's value; a
plain int is a seed). Each member's backbone is built as the runner builds it
(seed_everything, then the factory), so initial weights are the plain path's. The
backbones are stacked with `torch.func.stack_module_state` and called through
`functional_call` under `vmap`. At every step each member takes its own minibatch, in
the order its seed's `TensorBatches` gives the plain path (the permutation per (seed,
epoch)); the loss is the sum over members of each member's mean loss, so member s gets
the gradient of its own loss. Adam, AdamW and SGD act elementwise, so one optimiser over
the stacked tensors is S independent optimisers: torch's own when the members share
learning rate and weight decay, else `MemberOptimizer`, torch's arithmetic with a
per-member rate broadcast over the member axis. The learning rate is scaled for
`batch_scale` per member, as the plain path scales it (TrainBudget.train_lr).
Validation (with its loss), best weights, early stopping and testing follow the plain
path member by member (`Selection`). A member whose patience ran out, or that diverged,
leaves the stack, so later epochs cost only the members still training.

Agreement with the plain path is to float rounding, not bitwise: under vmap a linear
layer is bmm then add (not addmm) and losses decompose into other kernels, so weights
differ by ~1e-9 after a step. Where predictions stay clear of the decision boundary,
metrics and best epochs agree exactly (tests/test_vectorised.py,
tests/test_stacked_trials.py). Where a model sits at chance (parity n=32), or a
parameter's gradient is pure rounding (a bias before batch norm), Adam scales rounding
differences up to steps of size lr; there a one-ulp change of the plain path's own
initial weights moves test metrics just as far.

Where it pays: on CPU a batched matmul costs what S matmuls cost, so only the per-step
overhead is saved, and vmap adds some back. `python -m benchmarks.perf.vectorised` and
`python -m benchmarks.perf.stacked_trials` measure it. Models, views and budgets that
cannot run here are named by `stack_problem`; train those cells one by one.

Times: each record's train_s and eval_s are the joint wall time shared evenly over the
members (so summing records gives the machine time); the joint times are in details. A
budget's max_time_s caps the joint run at S times the cap, so a suite's time bound is
unchanged; it is checked at epoch ends, where the plain path with its default chunk (a
whole epoch per Lightning step) checks it too. How many epochs a capped run reaches
depends on the machine and the load, on either path.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .. import registry
from ..contract import DatasetSpec, Modality, TaskType, choose_view
from ..data import MathDataModule, TensorBatches
from ..metrics import metric
from .budget import TrainBudget
from .evaluation import (
    NonFiniteOutputs,
    build_metrics,
    check_finite,
    compact_predictions,
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


@dataclass(frozen=True)
class Member:
    """One model of a stack: its seed (initial weights and batch order) and, where set,
    its own learning rate and weight decay (None: the budget's)."""

    seed: int
    lr: float | None = None             # before batch_scale, as a budget's lr
    weight_decay: float | None = None

    def __post_init__(self) -> None:
        ok_lr = self.lr is None or (isinstance(self.lr, (int, float)) and
                                    math.isfinite(self.lr) and self.lr > 0)
        ok_wd = self.weight_decay is None or (isinstance(self.weight_decay, (int, float))
                                              and math.isfinite(self.weight_decay)
                                              and self.weight_decay >= 0)
        if not isinstance(self.seed, int) or not ok_lr or not ok_wd:
            raise ValueError(f"a stacked member needs an integer seed, lr > 0 and "
                             f"weight_decay >= 0 (finite); got {self}")

    def budget(self, budget: TrainBudget) -> TrainBudget:
        """The budget this member trains under, as a plain run of it would."""
        changes = {k: v for k, v in (("lr", self.lr), ("weight_decay", self.weight_decay))
                   if v is not None}
        return dataclasses.replace(budget, **changes) if changes else budget


def as_members(items: Sequence[Member | int]) -> list[Member]:
    """Members as given; a plain int is a member with that seed and the budget's rates."""
    return [m if isinstance(m, Member) else Member(int(m)) for m in items]


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
    view = spec.view or choose_view(spec, entry.modalities)  # a view's key ("vector:onehot")
    if view is None:
        return f"model {model_name!r} has no view of dataset {spec.name!r}"
    if spec.view_spec(view).modality is Modality.GRAPH:
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


# -- one optimiser step with a rate per member --------------------------------------------
class MemberOptimizer:
    """torch.optim's Adam, AdamW or SGD (momentum 0) on stacked tensors whose rows are
    members with their own learning rate and weight decay.

    The arithmetic is torch's single-tensor step (what torch runs on CPU), in its order:
    each Python scalar torch computes in float64 and rounds to float32 (lr / bias
    correction, 1 - lr * wd) is computed here from the same float64 values, one per
    member, and broadcast over the member axis. With one rate for all it is torch's step
    bit for bit (torch 2.13, CPU; tests/test_stacked_trials.py); on a build whose
    `add(x, alpha=a)` fuses the multiply-add, SGD's step and Adam's L2 term would part by
    one ulp (two roundings here). On CUDA torch's foreach kernels may round otherwise.
    """

    BETAS, EPS = (0.9, 0.999), 1e-8     # torch's defaults, which BenchModule keeps

    def __init__(self, name: str, tensors: list[torch.Tensor], lr: torch.Tensor,
                 weight_decay: torch.Tensor) -> None:
        self.name, self.tensors = name, tensors
        self.lr, self.weight_decay = lr.double(), weight_decay.double()  # (S,), float64
        self.decays = bool((self.weight_decay != 0).any())  # torch skips wd == 0 entirely
        self.steps = 0                  # members step together: one count for the stack
        # Adam's moments, zero at the start as torch's lazily created state
        self.moments = [(torch.zeros_like(t), torch.zeros_like(t)) for t in tensors]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for t in self.tensors:
            t.grad = None

    @staticmethod
    def _rows(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """A per-member float32 value shaped to broadcast over a stacked tensor's rows."""
        return v.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        dtype = self.tensors[0].dtype
        wd = self.weight_decay.to(dtype)
        if self.name == "sgd":
            neg_lr = (-self.lr).to(dtype)
            for t in self.tensors:
                if t.grad is None:
                    continue
                grad = t.grad.addcmul(t, self._rows(wd, t)) if self.decays else t.grad
                t.addcmul_(grad, self._rows(neg_lr, t))
            return
        beta1, beta2 = self.BETAS
        step = float(self.steps)
        bias_correction1 = 1 - beta1 ** step
        bias_correction2_sqrt = (1 - beta2 ** step) ** 0.5
        # float64 as torch's Python floats, rounded once to the parameters' dtype
        neg_step_size = (-(self.lr / bias_correction1)).to(dtype)
        decay = (1 - self.lr * self.weight_decay).to(dtype)   # AdamW's decoupled shrink
        for t, (exp_avg, exp_avg_sq) in zip(self.tensors, self.moments, strict=True):
            grad = t.grad
            if grad is None:
                continue
            if self.decays and self.name == "adamw":
                t.mul_(self._rows(decay, t))
            elif self.decays:               # Adam: L2 in the gradient
                grad = grad.addcmul(t, self._rows(wd, t))
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(self.EPS)
            # torch: addcdiv_(exp_avg, denom, value=-step_size), i.e. (value * a) / d
            t.add_(exp_avg.mul(self._rows(neg_step_size, t)).div_(denom))

    def keep(self, idx: torch.Tensor, tensors: list[torch.Tensor]) -> MemberOptimizer:
        """The optimiser of the rows `idx` only, on their new stacked tensors."""
        new = MemberOptimizer(self.name, tensors, self.lr[idx.to(self.lr.device)],
                              self.weight_decay[idx.to(self.lr.device)])
        new.steps = self.steps
        new.moments = [(a[idx].clone(), b[idx].clone()) for a, b in self.moments]
        return new


# -- S backbones as one ------------------------------------------------------------------
class SeedStack:
    """S backbones of one architecture as stacked tensors with one optimiser; rows
    (members) can be dropped when they stop. `rates`: each member's (learning rate,
    weight decay) as its optimiser takes them (default: the budget's, for all);
    target_mean / target_std: each member's regression standardisation (or one for all)."""

    def __init__(self, backbones: list[nn.Module], spec: DatasetSpec, budget: TrainBudget,
                 device: torch.device, target_mean: float | Sequence[float] = 0.0,
                 target_std: float | Sequence[float] = 1.0,
                 rates: list[tuple[float, float]] | None = None) -> None:
        params, buffers = torch.func.stack_module_state(backbones)
        self.params = {k: v.detach().to(device).requires_grad_() for k, v in params.items()}
        self.buffers = {k: v.to(device) for k, v in buffers.items()}
        # A real copy, not a meta one: some models keep plain tensor attributes.
        self.template = copy.deepcopy(backbones[0]).to(device)
        self.spec, self.budget, self.device = spec, budget, device
        self.regression = spec.task is TaskType.REGRESSION
        # Per member, the float32 values of BenchModule's target_mean / target_std buffers
        # (under vmap each member reads a 0-d tensor, as the plain module does).
        size = len(backbones)
        means = [target_mean] * size if isinstance(target_mean, (int, float)) else target_mean
        stds = [target_std] * size if isinstance(target_std, (int, float)) else target_std
        self.mean = torch.tensor([float(m) for m in means], device=device)
        self.std = torch.tensor([float(s) or 1.0 for s in stds], device=device)
        rates = rates or [(budget.train_lr, budget.weight_decay)] * size
        # One rate for all: torch's own optimiser, exactly the seeds-only path.
        self.shared = rates[0] if len(set(rates)) == 1 else None
        self.opt = self._optimizer(list(self.params.values()), rates)
        self._metrics: list[Any] = []  # one MetricCollection per member, reset after use

    def _optimizer(self, tensors: list[torch.Tensor], rates: list[tuple[float, float]]) -> Any:
        if self.shared is not None:  # as BenchModule.configure_optimizers
            lr, wd = self.shared
            return optimizer_class(self.budget.optimizer)(tensors, lr=lr, weight_decay=wd)
        lr, wd = (torch.tensor([r[i] for r in rates], dtype=torch.float64, device=self.device)
                  for i in (0, 1))
        return MemberOptimizer(self.budget.optimizer, tensors, lr, wd)

    @property
    def size(self) -> int:
        return next(iter(self.params.values())).shape[0]

    def _call(self, params: dict, buffers: dict, inputs: Any) -> torch.Tensor:
        if isinstance(inputs, Mapping):  # as benchmarks.module.call_backbone
            out = torch.func.functional_call(self.template, (params, buffers), (), dict(inputs))
        else:
            out = torch.func.functional_call(self.template, (params, buffers), (inputs,))
        return shape_outputs(out, self.spec)

    def _seed_loss(self, params: dict, buffers: dict, inputs: Any, target: torch.Tensor,
                   mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        return training_loss(self._call(params, buffers, inputs), target, self.spec, mean, std)

    def train_step(self, inputs: Any, target: torch.Tensor) -> torch.Tensor:
        """One optimiser step of every member on its own minibatch (inputs and target
        stacked on a leading member axis); returns the S minibatch losses."""
        self.template.train()
        losses = torch.vmap(self._seed_loss, randomness="error")(
            self.params, self.buffers, inputs, target, self.mean, self.std)
        self.opt.zero_grad(set_to_none=True)
        losses.sum().backward()  # d(sum)/d(loss_s) = 1: each member keeps its own gradient
        self.opt.step()
        return losses.detach()

    @torch.no_grad()
    def raw_outputs(self, inputs: Any, params: dict | None = None,
                    buffers: dict | None = None, batched: bool = False) -> torch.Tensor:
        """(S, B, ...) eval-mode outputs of every member in model units (regression
        standardised), as the loss reads them: on the same inputs, or with `batched` on
        inputs stacked per member."""
        self.template.eval()
        return torch.vmap(self._call, in_dims=(0, 0, 0 if batched else None),
                          randomness="error")(
            self.params if params is None else params,
            self.buffers if buffers is None else buffers, inputs)

    def outputs(self, inputs: Any, params: dict | None = None,
                buffers: dict | None = None) -> torch.Tensor:
        """(S, B, ...) eval-mode outputs in target units of every member on the same inputs."""
        return self._to_target_units(self.raw_outputs(inputs, params, buffers))

    def _to_target_units(self, raw: torch.Tensor) -> torch.Tensor:
        if not self.regression:
            return raw
        shape = (-1, *([1] * (raw.dim() - 1)))
        return raw * self.std[: len(raw)].view(shape) + self.mean[: len(raw)].view(shape)

    def row(self, i: int) -> dict[str, torch.Tensor]:
        """A copy of member i's parameters and buffers."""
        return {k: v[i].detach().clone() for k, v in {**self.params, **self.buffers}.items()}

    def keep(self, rows: list[int]) -> None:
        """Drop every member not in `rows`, optimiser state included."""
        idx = torch.tensor(rows, device=self.device)
        old_size = self.size
        new = {k: v.detach()[idx].clone().requires_grad_() for k, v in self.params.items()}
        if isinstance(self.opt, MemberOptimizer):
            opt = self.opt.keep(idx, list(new.values()))
        else:
            opt = self._optimizer(list(new.values()), [self.shared])
            for old_t, new_t in zip(self.params.values(), new.values(), strict=True):
                state = self.opt.state.get(old_t)
                if state:  # step counters are 0-d and shared by all members: kept as they are
                    opt.state[new_t] = {
                        k: v[idx].clone() if isinstance(v, torch.Tensor) and v.dim()
                        and v.shape[0] == old_size else v for k, v in state.items()}
        self.params, self.opt = new, opt
        self.buffers = {k: v[idx].clone() for k, v in self.buffers.items()}
        self.mean, self.std = self.mean[idx], self.std[idx]

    def evaluate(self, batches: Any, split: str, params: dict | None = None,
                 buffers: dict | None = None, keep_outputs: bool = False
                 ) -> list[dict[str, Any]]:
        """The task's torchmetrics of each member on one split, batch by batch as the
        plain path's validation and test steps update them, and the split's mean loss
        ("loss", as BenchModule's validation reports it). `batches` yields (inputs,
        target, batched): shared by all members, or (batched) stacked per member. A member
        whose outputs are not all finite gets {"__non_finite__": why} instead (its cell
        fails, as on the plain path). keep_outputs: each member's outputs in target units
        also under "__outputs__" (test predictions)."""
        params = self.params if params is None else params
        size = next(iter(params.values())).shape[0]
        while len(self._metrics) < size:  # built once: a MetricCollection costs ~1 ms
            self._metrics.append(build_metrics(self.spec).to(self.device))
        metrics = self._metrics[:size]
        bad: list[str | None] = [None] * size
        loss_sums = [torch.zeros((), device=self.device) for _ in range(size)]
        rows = [0] * size
        kept: list[list[torch.Tensor]] = [[] for _ in range(size)]
        for inputs, target, batched in batches:
            inputs, target = _to(inputs, self.device), target.to(self.device)
            raw = self.raw_outputs(inputs, params, buffers, batched)
            out = self._to_target_units(raw)
            for s, m in enumerate(metrics):
                t = target[s] if batched else target
                try:
                    check_finite(out[s], split)
                except NonFiniteOutputs as exc:
                    bad[s] = bad[s] or f"{type(exc).__name__}: {exc}"  # as the plain reason
                    continue
                # as BenchModule.validation_step: a float32 sum of batch loss * rows
                scaled = (t - self.mean[s]) / self.std[s] if self.regression else t
                loss_sums[s] = loss_sums[s] + task_loss(raw[s], scaled, self.spec) * len(t)
                rows[s] += len(t)
                m.update(*metric_inputs(out[s], t, self.spec))
                if keep_outputs:
                    kept[s].append(out[s].cpu())
        values: list[dict[str, Any]] = []
        for s, m in enumerate(metrics):
            if bad[s]:
                values.append({"__non_finite__": bad[s]})
                continue
            v: dict[str, Any] = {k: float(x) for k, x in m.compute().items()}
            v["loss"] = float(loss_sums[s]) / max(rows[s], 1)
            if keep_outputs:
                v["__outputs__"] = torch.cat(kept[s])
            values.append(v)
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


class MemberData:
    """Each member's data: one datamodule for all (trials, or seeds on one data split),
    or one per member (seeds that re-draw the data split), all with the same split
    sizes. The training splits are concatenated, so that one gather of row numbers
    (offset by each member's source) takes every member's own minibatch."""

    def __init__(self, dms: Sequence[MathDataModule], device: torch.device) -> None:
        self.sources = list({id(dm): dm for dm in dms}.values())  # each once, in order
        index = {id(dm): k for k, dm in enumerate(self.sources)}
        self.source_of = torch.tensor([index[id(dm)] for dm in dms])
        head = self.sources[0]
        self.splits = head.splits
        for dm in self.sources[1:]:
            sizes = [(s, dm.split_size(s), head.split_size(s)) for s in head.splits]
            if dm.splits != head.splits or any(a != b for _, a, b in sizes):
                raise NotStackable("members' data splits differ in size; no stack to vmap")
        self.n = head.split_size("train")
        self.device = device
        self.train_x = _to(_map_inputs(lambda *xs: torch.cat(xs),
                                       [dm.inputs("train") for dm in self.sources]), device)
        self.train_y = torch.cat([dm.target("train") for dm in self.sources]).to(device)

    def stats(self, regression: bool) -> tuple[list[float], list[float]]:
        """Each member's training-split target mean and std (0 and 1 unless regression)."""
        pairs = [dm.target_stats() if regression else (0.0, 1.0) for dm in self.sources]
        return ([pairs[k][0] for k in self.source_of.tolist()],
                [pairs[k][1] for k in self.source_of.tolist()])

    def train_batch(self, idx: torch.Tensor, active: list[int]) -> tuple[Any, torch.Tensor]:
        """Rows idx (S, B) of each active member's own training split."""
        if len(self.sources) > 1:
            offset = self.source_of[active].to(idx.device) * self.n
            idx = idx + offset.unsqueeze(1)
        return gather_rows(self.train_x, idx), gather_rows(self.train_y, idx)

    def eval_batches(self, split: str, members: list[int]) -> Any:
        """(inputs, target, batched) of one split: shared, or stacked per member."""
        if len(self.sources) == 1:
            for inputs, target in self.sources[0].loader(split):
                yield inputs, target, False
            return
        loaders = [dm.loader(split) for dm in self.sources]
        pick = self.source_of[members].tolist()
        for batch in zip(*loaders, strict=True):  # the same sizes: the same batches
            inputs = _map_inputs(lambda *xs: torch.stack([xs[k] for k in pick]),
                                 [b[0] for b in batch])
            yield inputs, torch.stack([batch[k][1] for k in pick]), True


# -- the entry point -------------------------------------------------------------------------
def device_for(hardware: Hardware) -> torch.device:
    """The one device a stack trains on; NotStackable for multi-device runs."""
    if hardware.devices != 1 or hardware.num_nodes != 1 or \
            hardware.strategy not in ("auto", "single_device"):
        raise NotStackable("stacked seeds run on one device (devices=1, one node)")
    return torch.device("cuda") if hardware.on_gpu or hardware.accelerator in ("gpu", "cuda") \
        else torch.device("cpu")


def train_stacked(model_name: str, hparams: dict[str, Any], members: Sequence[Member | int],
                  dm: MathDataModule | Sequence[MathDataModule], spec: DatasetSpec,
                  budget: TrainBudget, hardware: Hardware) -> list[TrainOutcome]:
    """Train the members of one (dataset, model, hparams, budget) as one stacked model;
    one TrainOutcome per member, in order (a member that diverged or gave non-finite
    outputs has `failed` set and no metrics). Each member trains as a plain run of its
    seed under `member.budget(budget)` would. `dm`: one datamodule for all members, or
    one per member (seeds that re-draw their data, with equal split sizes), each set up
    and configured for the view by the caller; test splits are scored where `splits`
    has them (a search's view of the data has none). Raises NotStackable when the
    members cannot share a run (see stack_problem)."""
    import lightning as L

    members = as_members(members)
    budgets = [m.budget(budget) for m in members]
    rates = [(b.train_lr, b.weight_decay) for b in budgets]
    keys = [(m.seed, *r) for m, r in zip(members, rates, strict=True)]
    dms = list(dm) if isinstance(dm, Sequence) else [dm] * len(members)
    if len(set(keys)) != len(keys) or not keys:
        raise NotStackable(f"members must be distinct and non-empty, got {members}")
    if len(dms) != len(members):
        raise NotStackable(f"{len(dms)} datamodules for {len(members)} members")
    seeds = [m.seed for m in members]
    device = device_for(hardware)
    reason = stack_problem(model_name, spec, hparams, budget)
    if reason:
        raise NotStackable(reason)
    data = MemberData(dms, device)
    backbones = []
    for seed in seeds:  # as the plain path: the same seed, then the same factory call
        L.seed_everything(seed, workers=False, verbose=False)
        backbones.append(registry.create_model(model_name, spec, **hparams))
    means, stds = data.stats(spec.task is TaskType.REGRESSION)
    stack = SeedStack(backbones, spec, budget, device, means, stds, rates)
    all_mean, all_std = stack.mean, stack.std
    rows = torch.arange(data.n)
    # A whole-split batch of row numbers is the epoch's permutation, exactly as the plain
    # path's TensorBatches draws it for that seed and epoch (it depends on neither the
    # batch size nor the data); minibatches are its consecutive slices, as there.
    perms = [TensorBatches(rows, rows, len(rows), shuffle=True, seed=s) for s in seeds]
    runs = [Selection(spec.metric, spec.higher_is_better, budget.patience, budget.min_epochs,
                      budget.stop_on, metric(spec.metric).best_value) for _ in members]
    failed: list[str | None] = [None] * len(members)
    active = list(range(len(members)))  # members still training, in the stack's row order

    t0 = time.perf_counter()
    for epoch in range(budget.max_epochs):
        order = torch.stack([next(iter(perms[m]))[1] for m in active]).to(device)  # (S, n)
        loss_sum, steps = torch.zeros(len(active), device=device), 0
        for start in range(0, len(rows), budget.train_batch_size):  # each its own minibatch
            idx = order[:, start:start + budget.train_batch_size]
            loss_sum += stack.train_step(*data.train_batch(idx, active))
            steps += 1
        mean_loss = (loss_sum / max(steps, 1)).tolist()
        vals = stack.evaluate(data.eval_batches("val", active), "val")
        done = []
        for i, m in enumerate(active):
            problem = vals[i].pop("__non_finite__", None)
            stop = runs[m].end_epoch(epoch, mean_loss[i], vals[i],
                                     functools.partial(stack.row, i), problem)
            failed[m] = runs[m].failed
            done.append(stop)
        out_of_time = budget.max_time_s > 0 and \
            time.perf_counter() - t0 >= budget.max_time_s * len(members)  # the S caps pooled
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
    tested = [m for m in range(len(members)) if failed[m] is None]
    metrics: dict[int, dict[str, dict[str, float]]] = {m: {"val": runs[m].best_metrics}
                                                       for m in tested}
    predictions: dict[int, dict[str, Any]] = {m: {} for m in tested}
    if tested:  # every member at its own best weights (and its own stats), in one stack
        params = {k: torch.stack([runs[m].best_state[k] for m in tested]) for k in stack.params}
        buffers = {k: torch.stack([runs[m].best_state[k] for m in tested])
                   for k in stack.buffers}
        pick = torch.tensor(tested, device=device)
        stack.mean, stack.std = all_mean[pick], all_std[pick]  # the stack has shrunk
        for split in (s for s in ("test", "ood_test") if s in data.splits):
            values = stack.evaluate(data.eval_batches(split, tested), split, params, buffers,
                                    keep_outputs=True)
            for m, member_values in zip(tested, values, strict=True):
                if "__non_finite__" in member_values:
                    failed[m] = member_values["__non_finite__"]
                    continue
                predictions[m][split] = compact_predictions(member_values.pop("__outputs__"),
                                                            spec)
                member_values.pop("loss")  # the plain path's test reports metrics only
                metrics[m][split] = member_values
    eval_s = time.perf_counter() - t1

    share_train, share_eval = train_s / len(members), eval_s / len(members)
    details: dict[str, Any] = {"vectorised": {"seeds": seeds, "joint_train_s": train_s,
                                              "joint_eval_s": eval_s}}
    if any(m.lr is not None or m.weight_decay is not None for m in members):
        details["vectorised"]["rates"] = [{"lr": b.lr, "weight_decay": b.weight_decay}
                                          for b in budgets]
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
            samples_per_s=data.n * max(run.epochs, 1) / max(share_train, 1e-9),
            history=run.history if ok else [], details=details, n_params=n_params,
            failed=failed[m], predictions=predictions.get(m, {}) if ok else {}))
    return outcomes
