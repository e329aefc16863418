"""A trained backbone's weights on disk, as weights only: loading never runs code.

`save_weights(module, path)` writes the state dict: safetensors for a `.safetensors` path
(preferred: a JSON header and raw tensor bytes, nothing to execute), else `torch.save` of
the state dict. `read_weights(path)` reads either kind into {name: tensor}, the second with
`torch.load(weights_only=True)`, whose unpickler builds tensors and containers only; a file
that is neither (a pickle that would call a function, a stray file) is a one-line
UserError, and nothing in it runs. `load_weights(module, path)` copies them into a module
built by the model's factory (the file holds no architecture). Fitted models are not
covered: their state is arbitrary Python objects, which only a code-running load rebuilds.
"""

from __future__ import annotations

import json
import pickle
import struct
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ..errors import UserError

SUFFIX = ".safetensors"


def _is_safetensors(head: bytes) -> bool:
    """An 8-byte little-endian header length, then the JSON header's opening brace."""
    return len(head) >= 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] > 1


def save_weights(module: nn.Module, path: str | Path,
                 metadata: Mapping[str, str] | None = None) -> Path:
    """Write module's state dict to path (safetensors for a .safetensors suffix, else
    torch.save); metadata (strings, e.g. dataset and model names) only with safetensors."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")  # a crash never leaves half a weights file
    if path.suffix == SUFFIX:
        from safetensors.torch import save_model

        # save_model drops the duplicates of shared (tied) tensors, which save_file refuses
        save_model(module, str(tmp), metadata=dict(metadata) if metadata else None)
    else:
        if metadata:
            raise ValueError("metadata is kept by safetensors files only; use a .safetensors path")
        torch.save({k: v.detach().cpu() for k, v in module.state_dict().items()}, tmp)
    tmp.replace(path)
    return path


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """{name: tensor} from a safetensors file or a torch.save'd state dict, or a one-line
    UserError for anything else; the format is told by the file's bytes, not its name."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            head = f.read(9)
    except OSError as e:
        raise UserError(f"cannot read weights file {path}: {e.strerror}") from None
    if _is_safetensors(head):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, json.JSONDecodeError, ValueError) as e:
            raise UserError(f"{path} is not a valid safetensors file ({_first_line(e)})") from None
    try:
        # (recent torch hands a .safetensors name to safetensors, whatever its bytes)
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise UserError(f"{path} is not a weights file: it holds Python objects beyond "
                        f"tensors, so it was refused and nothing in it ran ({_first_line(e)})") from None
    except Exception as e:  # noqa: BLE001 - any bytes can break an unpickler in any way;
        # the weights-only unpickler runs no code whatever it fails on
        raise UserError(f"{path} is not a weights file (safetensors, or a state dict saved "
                        f"by torch.save): {_first_line(e)}") from None
    if not isinstance(blob, Mapping) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in blob.items()):
        raise UserError(f"{path} is not a weights file: expected a state dict of named "
                        f"tensors, found a {type(blob).__name__}")
    return dict(blob)


def _first_line(e: Exception) -> str:
    """torch's messages span many lines; the first names what was refused."""
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:160]


def load_weights(module: nn.Module, path: str | Path, strict: bool = True) -> nn.Module:
    """Copy the weights of path into module (built by the same factory and hparams); a
    name or shape that does not match is a one-line UserError."""
    state = read_weights(path)
    own = module.state_dict()
    # safetensors keeps one of a set of tied tensors; the module refills the others
    missing = [k for k in own if k not in state and not _tied_elsewhere(own, k, state)]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in state if k in own and tuple(state[k].shape) != tuple(own[k].shape)]
    if wrong or (strict and (missing or unexpected)):
        detail = "; ".join(f"{label}: {', '.join(names[:4])}{' ...' if len(names) > 4 else ''}"
                           for label, names in (("missing", missing), ("unexpected", unexpected),
                                                ("wrong shape", wrong)) if names)
        raise UserError(f"weights in {path} do not fit {type(module).__name__} ({detail}); "
                        "build it with the factory and hparams it was trained with")
    module.load_state_dict(state, strict=False)
    return module


def _tied_elsewhere(own: Mapping[str, torch.Tensor], name: str,
                    state: Mapping[str, torch.Tensor]) -> bool:
    """name shares storage with a tensor that the file does hold."""
    ptr = own[name].untyped_storage().data_ptr()
    return any(k in state and own[k].untyped_storage().data_ptr() == ptr
               for k in own if k != name)
