"""Building blocks and hyperparameter checks shared by model plugins.

Model plugins do not import each other; what more than one of them needs lives here:
- checks: `check_positive`, `check_dropout` (one-line UserErrors naming the model and
  the parameter)
- sequences: `real_lengths`, `trim_padding` (token 0 is PAD, see benchmarks.contract)
- vectors: `vector_steps` (a vector read as a sequence of patches)
- sets: `compact_set`, `key_padding_mask`
- attention: `heads_for`
"""

from __future__ import annotations

import torch
from torch import nn

from benchmarks.contract import PAD
from benchmarks.errors import UserError

# -- hyperparameter checks ------------------------------------------------------------


def check_positive(model: str, **values: int) -> None:
    """One UserError line naming every hyperparameter below 1."""
    bad = {k: v for k, v in values.items() if v < 1}
    if bad:
        got = ", ".join(f"{k}={v}" for k, v in bad.items())
        raise UserError(f"model {model!r}: {got}; each must be an integer >= 1")


def check_dropout(model: str, dropout: float) -> None:
    """One UserError line unless 0 <= dropout < 1."""
    if not 0.0 <= dropout < 1.0:
        raise UserError(f"model {model!r}: dropout must be in [0, 1), got {dropout}")


# -- sequences and vectors -------------------------------------------------------------


def real_lengths(x: torch.Tensor) -> torch.Tensor:
    """(B, L) tokens -> (B,) position of each row's last real token + 1 (0 if all PAD).

    The position, not the count of real tokens, so a stray PAD inside a sequence is read
    as a token rather than cutting it.
    """
    steps = torch.arange(1, x.shape[1] + 1, device=x.device)
    return ((x != PAD) * steps).amax(dim=1)


def trim_padding(x: torch.Tensor) -> torch.Tensor:
    """Drop the columns after the batch's last real token (at least one column is kept):
    padding a split to a longer OOD length then costs nothing, and positions are unchanged."""
    return x[:, : max(int(real_lengths(x).max()), 1)]


def vector_steps(x: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, D) -> (B, ceil(D / patch), patch): consecutive entries, the tail zero-padded."""
    x = x.flatten(1)
    return nn.functional.pad(x, (0, -x.shape[1] % patch)).unflatten(1, (-1, patch))


# -- sets and attention ----------------------------------------------------------------


def compact_set(x: torch.Tensor,
                mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Real elements first, padded slots zeroed, slots that no row uses dropped.

    Exact for a permutation-invariant model (no positions), and it makes the cost follow
    the largest set in the batch rather than the padded width (an OOD split may pad sets
    ten times wider). Returns (x, mask); mask None means every slot is real.
    """
    if mask is None:
        return x, torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)
    order = order[:, : max(int(mask.sum(dim=1).max()), 1)]
    mask = torch.gather(mask, 1, order)
    x = torch.gather(x, 1, order.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
    return x.masked_fill(~mask.unsqueeze(-1), 0.0), mask


def key_padding_mask(real: torch.Tensor) -> torch.Tensor:
    """Attention's key_padding_mask (True = ignore) for a (B, S) mask of real slots.

    An all-padding row would leave attention no key (NaN): it attends to its first slot
    instead.
    """
    keys = real.clone()
    keys[~real.any(dim=1), 0] = True
    return ~keys


def heads_for(d_model: int, nhead: int) -> int:
    """The largest head count <= nhead that divides d_model, so that any width builds
    (attention's parameter count does not depend on the number of heads)."""
    return max(h for h in range(1, min(nhead, d_model) + 1) if d_model % h == 0)
