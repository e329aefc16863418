"""Attributions of a trained model over the inputs of one view, in one layout per view.

`attribute(model, spec, inputs, target, method)` returns a float tensor (N, K, *layout):
N rows, K = spec.num_outputs outputs, and the per-sample layout of the view

    vector, tabular  (D,)        per feature
    sequence         (L,)        per position: attributed on the output of the model's one
                                 nn.Embedding and summed over the embedding dimension;
                                 columns a model trims as padding get 0
    image            (C, H, W)   per pixel (Cayley tables: per cell and value channel)
    set              (S,)        per element (slot of the padded set), features summed
    graph            (n_max,)    per node, graph i's nodes at [i, k, :n_i] in their order,
                                 zero beyond; n_max is the largest graph of `inputs`

Methods. Networks (nn.Module, called as the runner calls them):
- saliency: |d loss_k / d x| (Davies et al. 2021), loss_k the loss of output k: binary
  cross-entropy of logit k against the true label (binary, multilabel), -log softmax_k
  (multiclass: the cross-entropy were the label k), and for regression the output f_k itself
  (the loss gradient is f_k's gradient times the residual, a per-row factor that leaves a
  row's ranking unchanged, vanishes on a well-fitted model, and needs the standardised
  targets a backbone was trained on).
- ig: Captum's IntegratedGradients of output k (logit or value) from `baseline`
  (default zeros: the zero vector, the PAD embedding, empty pixels and node features).
- shap: Captum's GradientShap (expected gradients) of output k against a background
  distribution: `baseline` if given, else the explained rows themselves (graphs: zeros).
- permutation: scikit-learn's permutation_importance of each column of a tensor view.
Fitted models (FittedModel: fit/predict on the vector view): shap is Captum's
ShapleyValueSampling (baseline default: the column means of the explained rows), and
permutation as for networks; saliency and ig need gradients and are refused.

Permutation importance is a property of the whole set of rows, so it is broadcast to
every row. A method a model or view cannot take is a one-line UserError.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..contract import DatasetSpec, Modality, TaskType
from ..data import num_rows, take_rows
from ..errors import UserError
from ..train.evaluation import shape_outputs
from ..train.module import call_backbone

METHODS = ("saliency", "ig", "shap", "permutation")
# n_samples when none is given: integration steps, SHAP samples (or permutations of the
# features for fitted models), permutation repeats
DEFAULT_SAMPLES = {"saliency": 1, "ig": 32, "shap": 16, "permutation": 5}
TENSOR_VIEWS = (Modality.VECTOR, Modality.TABULAR, Modality.SEQUENCE, Modality.IMAGE)


def attribution_layout(spec: DatasetSpec, inputs: Any = None) -> tuple[int, ...]:
    """The per-sample layout of attributions in spec's view (see the module docstring);
    a graph view needs its inputs (a GraphStore or Batch) for n_max."""
    view = spec.input
    if view.modality is Modality.SET:
        return (view.shape[0],)
    if view.modality is Modality.GRAPH:
        if inputs is None:
            raise ValueError("the attribution layout of a graph view depends on its inputs")
        return (int(_node_counts(inputs).max()),)
    return view.shape


def attribute(model: Any, spec: DatasetSpec, inputs: Any, target: torch.Tensor | None,
              method: str, *, baseline: Any = None, n_samples: int | None = None,
              batch_size: int = 128, seed: int = 0) -> torch.Tensor:
    """Attributions (N, K, *layout) of `model` on `inputs` (rows of spec's view, as the
    datamodule serves them: tensor, set dict, GraphStore or torch_geometric Batch).

    target: the true targets of the rows (saliency of a classifier and permutation read
    them), in the units of the model's outputs (regression networks: standardised).
    baseline: in the attributed space (the view's inputs; sequences: the embedding
    output); see the module docstring for each method's default. n_samples: IG steps,
    SHAP samples, or permutation repeats (DEFAULT_SAMPLES). batch_size: rows per pass.
    seed: the random draws of shap and permutation.
    """
    if method not in METHODS:
        raise UserError(f"unknown attribution method {method!r}; choose one of {', '.join(METHODS)}")
    n = DEFAULT_SAMPLES[method] if n_samples is None else int(n_samples)
    if n < 1:
        raise UserError(f"n_samples={n_samples} must be at least 1")
    # forked generators: the draws are reproducible and the caller's streams untouched
    np_state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        np.random.seed(seed)  # Captum's GradientShap draws its coefficients with numpy
        try:
            if isinstance(model, nn.Module):
                return _attribute_network(model, spec, inputs, target, method, baseline, n,
                                          batch_size, seed)
            if hasattr(model, "predict"):
                return _attribute_fitted(model, spec, inputs, target, method, baseline, n,
                                         seed)
        finally:
            np.random.set_state(np_state)
    raise UserError(f"cannot explain a {type(model).__name__}: attributions need an "
                    "nn.Module or a fitted model with predict()")


# -- outputs and losses ------------------------------------------------------------------
def _outputs(raw: torch.Tensor, spec: DatasetSpec) -> torch.Tensor:
    """Raw model outputs as (rows, K), whatever the task's target layout."""
    return shape_outputs(raw, spec).reshape(-1, spec.num_outputs)


def _per_output_loss(out: torch.Tensor, target: torch.Tensor | None,
                     spec: DatasetSpec) -> torch.Tensor:
    """(rows, K): the loss of each output, whose input gradient is the saliency."""
    if spec.task is TaskType.MULTICLASS:
        return -F.log_softmax(out, dim=1)
    if spec.task is TaskType.REGRESSION:
        return out  # see the module docstring: the residual is a per-row factor
    if target is None:
        raise UserError("saliency of a classifier is the gradient of its loss, which needs "
                        "the true targets; pass target")
    return F.binary_cross_entropy_with_logits(out, target.reshape(out.shape).float(),
                                              reduction="none")


def _permutation_scores(out: torch.Tensor, y: torch.Tensor, spec: DatasetSpec) -> dict[str, float]:
    """Minus the loss of each output on these rows (higher is better, as scikit-learn
    expects); multiclass output k: the cross-entropy of the rows labelled k."""
    if spec.task is TaskType.MULTICLASS:
        logp = F.log_softmax(out, dim=1)
        y = y.long().reshape(-1)
        scores = [float(logp[y == k, k].mean()) if bool((y == k).any()) else 0.0
                  for k in range(spec.num_outputs)]
    elif spec.task is TaskType.REGRESSION:
        scores = (-(out - y.reshape(out.shape).float()) ** 2).mean(0).tolist()
    else:
        scores = (-F.binary_cross_entropy_with_logits(
            out, y.reshape(out.shape).float(), reduction="none")).mean(0).tolist()
    return {str(k): float(s) for k, s in enumerate(scores)}


# -- what Captum attributes to, per view -----------------------------------------------------
@dataclass
class _Adapter:
    """One chunk of rows as Captum sees it: a tensor with rows first (`inputs`), per-row
    context tensors Captum expands alongside it (`context`), a forward giving (rows', K)
    raw outputs, and the map from an attribution shaped like `inputs` to (B, *layout)."""

    inputs: torch.Tensor
    context: tuple[torch.Tensor, ...]
    forward: Callable[..., torch.Tensor]
    to_layout: Callable[[torch.Tensor], torch.Tensor]
    background: bool  # other rows are meaningful SHAP baselines


def _adapter(model: nn.Module, spec: DatasetSpec, chunk: Any, layout: tuple[int, ...]) -> _Adapter:
    m = spec.modality
    if m is Modality.SEQUENCE:
        return _sequence_adapter(model, spec, chunk, layout[0])
    if m is Modality.SET:
        return _Adapter(chunk["x"].float(), (chunk["mask"],),
                        lambda x, mask: _outputs(model(x=x, mask=mask), spec),
                        lambda a: a.sum(-1), background=True)
    if m is Modality.GRAPH:
        return _graph_adapter(model, spec, chunk, layout[0])
    return _Adapter(chunk.float(), (), lambda x: _outputs(call_backbone(model, x), spec),
                    lambda a: a, background=True)


def _embedding_of(model: nn.Module) -> nn.Embedding:
    found = [mod for mod in model.modules() if isinstance(mod, nn.Embedding)]
    if len(found) != 1:
        raise UserError(f"per-position attribution of a sequence model attributes on its token "
                        f"embedding; {type(model).__name__} has {len(found)} nn.Embedding layers, "
                        "not exactly one")
    return found[0]


def _sequence_adapter(model: nn.Module, spec: DatasetSpec, tokens: torch.Tensor,
                      length: int) -> _Adapter:
    """Attribute on the embedding output: a forward hook substitutes the tensor Captum
    perturbs for what the embedding computes, while the tokens still drive the model's
    masks, lengths and trimming (so the substituted tensor always has the same shape)."""
    embed = _embedding_of(model)
    seen: list[torch.Tensor] = []
    hook = embed.register_forward_hook(lambda mod, args, out: seen.append(out.detach()))
    try:
        with torch.no_grad():
            model(tokens)
    finally:
        hook.remove()
    if len(seen) != 1:
        raise UserError(f"{type(model).__name__} calls its embedding {len(seen)} times a "
                        "forward; per-position attribution needs exactly one call")

    def forward(e: torch.Tensor, toks: torch.Tensor) -> torch.Tensor:
        def substitute(mod: nn.Module, args: Any, out: torch.Tensor) -> torch.Tensor:
            if out.shape != e.shape:  # a bug: the model embeds other columns than before
                raise RuntimeError(f"embedding output {tuple(out.shape)} != attributed {tuple(e.shape)}")
            return e
        handle = embed.register_forward_hook(substitute)
        try:
            return _outputs(model(toks), spec)
        finally:
            handle.remove()

    def to_layout(a: torch.Tensor) -> torch.Tensor:
        per_position = a.sum(-1)  # over the embedding dimension
        # positions a model trimmed away (after the batch's last real token) get 0
        return F.pad(per_position, (0, length - per_position.shape[1]))

    return _Adapter(seen[0], (tokens,), forward, to_layout, background=True)


def _node_counts(graphs: Any) -> torch.Tensor:
    ptr = graphs.node_ptr if hasattr(graphs, "node_ptr") else graphs.ptr
    return (ptr[1:] - ptr[:-1]).cpu()


def pad_nodes(per_node: torch.Tensor, ptr: torch.Tensor, n_max: int) -> torch.Tensor:
    """(total nodes, ...) values to (graphs, n_max, ...) by the offsets ptr, zero-padded:
    node j of graph i lands at [i, j]."""
    ptr = ptr.to(per_node.device)
    counts = ptr[1:] - ptr[:-1]
    graph = torch.repeat_interleave(torch.arange(len(counts), device=ptr.device), counts)
    local = torch.arange(len(per_node), device=ptr.device) - ptr[graph]
    out = per_node.new_zeros((len(counts), n_max, *per_node.shape[1:]))
    out[graph, local] = per_node
    return out


def _graph_adapter(model: nn.Module, spec: DatasetSpec, batch: Any, n_max: int) -> _Adapter:
    """Node features are the attributed rows. Captum expands rows (by integration steps,
    by samples); the forward rebuilds as many copies of the graphs, telling the copies
    apart by the node index that Captum expands alongside as context."""
    from torch_geometric.data import Batch

    x, edge_index, graph = batch.x.float(), batch.edge_index, batch.batch
    total, graphs = x.shape[0], int(batch.num_graphs)

    def forward(xs: torch.Tensor, node: torch.Tensor) -> torch.Tensor:
        copies = xs.shape[0] // total
        # each node appears `copies` times; its k-th appearance belongs to copy k
        order = torch.argsort(node, stable=True)
        copy = torch.empty_like(node)
        copy[order] = torch.arange(len(node), device=node.device) % copies
        where = torch.empty((copies, total), dtype=torch.long, device=node.device)
        where[copy, node] = torch.arange(len(node), device=node.device)
        edges = where[:, edge_index].permute(1, 0, 2).reshape(2, -1)
        data = Batch(x=xs, edge_index=edges, batch=copy * graphs + graph[node])
        data._num_graphs = copies * graphs  # what the pooling sizes its output by
        return _outputs(model(data), spec)

    return _Adapter(x, (torch.arange(total, device=x.device),), forward,
                    lambda a: pad_nodes(a.sum(-1), batch.ptr, n_max), background=False)


# -- networks ------------------------------------------------------------------------------
def _to(inputs: Any, device: torch.device) -> Any:
    if isinstance(inputs, dict):
        return {k: v.to(device) for k, v in inputs.items()}
    return inputs.to(device)


def _chunks(inputs: Any, batch_size: int) -> list[tuple[Any, torch.Tensor]]:
    """(rows of inputs, their indices) in consecutive chunks; a torch_geometric Batch is
    taken whole (it has no row gather here)."""
    if hasattr(inputs, "num_graphs"):
        return [(inputs, torch.arange(int(inputs.num_graphs)))]
    n = num_rows(inputs)
    return [(take_rows(inputs, idx), idx) for idx in torch.arange(n).split(batch_size)]


def _captum() -> Any:
    """captum.attr, or a one-line UserError naming the extra that installs it."""
    try:
        import captum.attr
    except ImportError:
        raise UserError("attributions need the optional package captum; install it with "
                        "pip install 'mlwm-bench[explain]'") from None
    return captum.attr


def _attribute_network(model: nn.Module, spec: DatasetSpec, inputs: Any,
                       target: torch.Tensor | None, method: str, baseline: Any, n: int,
                       batch_size: int, seed: int) -> torch.Tensor:
    layout = attribution_layout(spec, inputs)
    if method == "permutation":
        if spec.modality not in TENSOR_VIEWS:
            raise UserError(f"permutation importance permutes columns of a tensor view; the "
                            f"{spec.modality.value} view has none (use saliency, ig or shap)")
        return _permutation(_network_predict(model, spec, inputs, batch_size), spec, inputs,
                            target, n, seed)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()  # batch-norm statistics and no dropout: the model as it is scored
    out = []
    try:
        # cuDNN runs an RNN backward only in training mode; attributions need it in eval
        with torch.enable_grad(), torch.inference_mode(False), \
                torch.backends.cudnn.flags(enabled=False):
            for chunk, idx in _chunks(inputs, batch_size):
                a = _adapter(model, spec, _to(chunk, device), layout)
                y = None if target is None else take_rows(target, idx).to(device)
                per_output = [a.to_layout(_captum_method(a, y, spec, method, k, baseline, n)
                                          .detach()).float().cpu()
                              for k in range(spec.num_outputs)]
                out.append(torch.stack(per_output, dim=1))
    finally:
        model.train(was_training)
    return torch.cat(out)


def _captum_method(a: _Adapter, y: torch.Tensor | None, spec: DatasetSpec, method: str,
                   k: int, baseline: Any, n: int) -> torch.Tensor:
    """One Captum method's attribution of output k, shaped like a.inputs."""
    attr = _captum()
    inputs = a.inputs.detach().clone().requires_grad_()
    if method == "saliency":
        def loss(*args: torch.Tensor) -> torch.Tensor:
            return _per_output_loss(a.forward(*args), y, spec)
        return attr.Saliency(loss).attribute(inputs, target=k, abs=True,
                                             additional_forward_args=a.context)
    if method == "ig":
        base = 0.0 if baseline is None else _baseline(baseline, a.inputs)
        return attr.IntegratedGradients(a.forward).attribute(
            inputs, baselines=base, target=k, n_steps=n, additional_forward_args=a.context)
    # no noise (stdevs=0): the expectation is over baselines and path points only
    return attr.GradientShap(a.forward).attribute(
        inputs, baselines=_shap_background(baseline, a), target=k, n_samples=n, stdevs=0.0,
        additional_forward_args=a.context)


def _baseline(baseline: Any, like: torch.Tensor) -> Any:
    if isinstance(baseline, (int, float)):
        return float(baseline)
    return torch.as_tensor(baseline, dtype=like.dtype, device=like.device)


def _shap_background(baseline: Any, a: _Adapter) -> torch.Tensor:
    """GradientShap's reference distribution (rows first)."""
    if baseline is not None:
        b = _baseline(baseline, a.inputs)
        return torch.full_like(a.inputs[:1], b) if isinstance(b, float) else b
    return a.inputs.detach() if a.background else torch.zeros_like(a.inputs[:1])


def _network_predict(model: nn.Module, spec: DatasetSpec, inputs: torch.Tensor,
                     batch_size: int) -> Callable[[np.ndarray], np.ndarray]:
    """The network as a predict on 2-D numpy rows (the columns of a tensor view)."""
    shape, dtype = tuple(inputs.shape[1:]), inputs.dtype
    device = next((p.device for p in model.parameters()), torch.device("cpu"))

    def predict(x2d: np.ndarray) -> np.ndarray:
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                x = torch.as_tensor(x2d).to(dtype).reshape(-1, *shape)
                parts = [_outputs(call_backbone(model, x[s:s + 4 * batch_size].to(device)), spec)
                         for s in range(0, len(x), 4 * batch_size)]
        finally:
            model.train(was_training)
        return torch.cat(parts).float().cpu().numpy()

    return predict


# -- fitted models ---------------------------------------------------------------------------
def _attribute_fitted(model: Any, spec: DatasetSpec, inputs: Any, target: torch.Tensor | None,
                      method: str, baseline: Any, n: int, seed: int) -> torch.Tensor:
    if method in ("saliency", "ig"):
        raise UserError(f"method {method!r} needs gradients, which a fitted model "
                        f"({type(model).__name__}) has not; use shap or permutation")
    if spec.modality not in (Modality.VECTOR, Modality.TABULAR):
        raise UserError(f"fitted models read the vector view, not {spec.modality.value}")
    x = torch.as_tensor(np.asarray(inputs), dtype=torch.float32)

    def predict(x2d: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict(x2d), dtype=np.float32).reshape(len(x2d), -1)

    if method == "permutation":
        return _permutation(predict, spec, x, target, n, seed)
    def forward(t: torch.Tensor) -> torch.Tensor:
        return _outputs(torch.from_numpy(predict(t.detach().cpu().numpy())), spec)

    base = x.mean(0, keepdim=True) if baseline is None else _baseline(baseline, x)
    # enough perturbed copies per predict call to amortise a fitted model's overhead
    per_eval = max(1, min(x.shape[1], 8192 // max(len(x), 1)))
    sampler = _captum().ShapleyValueSampling(forward)
    return torch.stack([sampler.attribute(x, baselines=base, target=k, n_samples=n,
                                          perturbations_per_eval=per_eval).float()
                        for k in range(spec.num_outputs)], dim=1)


# -- permutation importance (both kinds) ----------------------------------------------------
class _Predictor:
    """The estimator scikit-learn's permutation_importance asks for: it only checks for
    fit and hands the object to our scorer, which calls predict."""

    def __init__(self, predict: Callable[[np.ndarray], np.ndarray]) -> None:
        self.predict = predict

    def fit(self, *args: Any) -> _Predictor:
        return self


def _permutation(predict: Callable[[np.ndarray], np.ndarray], spec: DatasetSpec,
                 inputs: torch.Tensor, target: torch.Tensor | None, repeats: int,
                 seed: int) -> torch.Tensor:
    from sklearn.inspection import permutation_importance

    if target is None:
        raise UserError("permutation importance measures the loss a permuted column costs, "
                        "which needs the true targets; pass target")
    x2d = inputs.reshape(len(inputs), -1).cpu().numpy()
    y = torch.as_tensor(target).cpu()

    def scorer(est: _Predictor, xs: np.ndarray, ys: Any) -> dict[str, float]:
        return _permutation_scores(torch.from_numpy(est.predict(xs)).float()
                                   .reshape(len(xs), -1), y, spec)

    got = permutation_importance(_Predictor(predict), x2d, y.numpy(), scoring=scorer,
                                 n_repeats=repeats, random_state=seed)
    per_output = torch.stack([torch.as_tensor(got[str(k)].importances_mean, dtype=torch.float32)
                              for k in range(spec.num_outputs)])
    layout = tuple(inputs.shape[1:])
    # one importance per column for the whole set of rows, the same for every row
    return per_output.reshape(1, spec.num_outputs, *layout).expand(
        len(inputs), -1, *layout).contiguous()
