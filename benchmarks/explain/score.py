"""How well attributions rank the inputs known to matter above the rest.

`score_attributions(attr, relevant_mask)` compares attributions (N, K, *layout) with a
boolean mask broadcastable to them (a datamodule's relevant_inputs). Each (row, output)
pair is scored on |attribution|: AUROC of relevant against the rest (scipy's Mann-Whitney
U, equal to scikit-learn's roc_auc_score per pair and vectorised over pairs), and precision at k, k the number of relevant inputs of that pair; both are
averaged over pairs. A pair whose mask is all True or all False ranks nothing and is
skipped (counted in `skipped`). Where the mask has size 1 along a layout axis that the
attributions spread over (a Cayley table's mask per cell, attributions per cell and value
channel), the mask's granularity defines the inputs: |attribution| is summed over that axis.
"""

from __future__ import annotations

from typing import Any

import torch


def _as_inputs(attr: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(pairs, inputs) magnitudes and mask, after summing |attr| over the layout axes the
    mask does not resolve."""
    if mask.dim() != attr.dim():
        raise ValueError(f"relevant mask {tuple(mask.shape)} and attributions "
                         f"{tuple(attr.shape)} must have the same number of axes")
    mag = attr.abs()
    for axis in range(2, attr.dim()):
        if mask.shape[axis] == 1 and attr.shape[axis] > 1:
            mag = mag.sum(axis, keepdim=True)
    try:
        mask = mask.expand(mag.shape)
    except RuntimeError:
        raise ValueError(f"relevant mask {tuple(mask.shape)} does not broadcast to "
                         f"attributions {tuple(attr.shape)}") from None
    n, k = mag.shape[:2]
    return mag.reshape(n * k, -1), mask.reshape(n * k, -1)


def precision_at_k(mag: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per pair (row of mag): the share of relevant inputs among the k largest, k = the
    number of relevant inputs; ties at the k-th value are shared out at random in
    expectation, so a constant attribution scores the base rate and not an accident of
    ordering."""
    k = mask.sum(1)
    kth = torch.sort(mag, dim=1, descending=True).values.gather(1, (k - 1).clamp(min=0)[:, None])
    above, tied = mag > kth, mag == kth
    rel_above = (above & mask).sum(1).float()
    rel_tied = (tied & mask).sum(1).float()
    slots = (k - above.sum(1)).float()  # places of the top k left for the tied inputs
    return (rel_above + slots * rel_tied / tied.sum(1).clamp(min=1)) / k.clamp(min=1)


def _auroc(mag: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
    """Per pair, AUROC of relevant over irrelevant inputs as the Mann-Whitney U of the
    relevant ones over k (P - k) (ties count one half): the number roc_auc_score gives
    (the tests check), computed by scipy over all pairs at once instead of one call each."""
    from scipy.stats import mannwhitneyu

    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)  # relevant first
    ranked = mag.gather(1, order).double().numpy()
    u = mannwhitneyu(ranked[:, :k], ranked[:, k:], axis=1, method="asymptotic",
                     use_continuity=False).statistic
    return torch.as_tensor(u / (k * (mag.shape[1] - k)), dtype=torch.float64)


def score_attributions(attr: Any, relevant_mask: Any) -> dict[str, Any]:
    """AUROC and precision at k of attributions against a relevant-input mask, averaged
    over the (row, output) pairs that have both relevant and irrelevant inputs.

    Returns auroc, precision_at_k (None when no pair is scorable), auroc_by_output and
    precision_by_output (K values, None where an output has no scorable pair), and the
    counts: rows, outputs, inputs (per pair), scored and skipped pairs, and relevant_mean
    (mean k of the scored pairs).
    """
    attr = torch.as_tensor(attr).detach().float().cpu()
    mask = torch.as_tensor(relevant_mask).detach().bool().cpu()
    n, k_out = attr.shape[:2]
    mag, m = _as_inputs(attr, mask)
    k = m.sum(1)
    ok = (k > 0) & (k < m.shape[1])
    auroc = torch.full((len(m),), float("nan"), dtype=torch.float64)
    prec = torch.full((len(m),), float("nan"), dtype=torch.float64)
    for kk in torch.unique(k[ok]).tolist():  # pairs with the same k score as one batch
        rows = (ok & (k == kk)).nonzero().reshape(-1)
        auroc[rows] = _auroc(mag[rows], m[rows], kk)
        prec[rows] = precision_at_k(mag[rows], m[rows]).double()

    def mean(v: torch.Tensor) -> float | None:
        v = v[~torch.isnan(v)]
        return float(v.mean()) if len(v) else None

    def by_output(v: torch.Tensor) -> list[float | None]:
        return [mean(v.reshape(n, k_out)[:, j]) for j in range(k_out)]

    return {
        "auroc": mean(auroc), "precision_at_k": mean(prec),
        "auroc_by_output": by_output(auroc), "precision_by_output": by_output(prec),
        "rows": n, "outputs": k_out, "inputs": int(m.shape[1]),
        "scored": int(ok.sum()), "skipped": int((~ok).sum()),
        "relevant_mean": float(k[ok].float().mean()) if bool(ok.any()) else None,
    }


def top_inputs(attr: Any, count: int) -> list[int]:
    """The `count` inputs (flat layout indices) with the largest mean |attribution| over
    rows and outputs, largest first: what a global ranking puts first."""
    mag = torch.as_tensor(attr).detach().float().abs()
    return torch.argsort(mag.mean(dim=(0, 1)).reshape(-1), descending=True)[:count].tolist()
