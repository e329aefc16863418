"""Where a cell trains: the Lightning accelerator, devices, strategy and nodes, checked
against the machine before anything runs (an impossible request is one line, not a
`failed` record per cell), and the names of the devices for records."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..errors import UserError

ACCELERATORS = ("auto", "cpu", "gpu", "cuda")


@dataclass(frozen=True)
class Hardware:
    """Lightning's hardware settings for one cell (never part of a cell's identity)."""

    accelerator: str = "auto"     # auto, cpu, gpu (cuda)
    devices: int = 1              # devices per cell (DDP when > 1)
    strategy: str = "auto"        # Lightning strategy, e.g. ddp
    num_nodes: int = 1

    @property
    def on_gpu(self) -> bool:
        return uses_gpu(self.accelerator)

    def check(self) -> str | None:
        """Why this request cannot run on this machine (UserError text), or None; a note
        to print once when it runs but not as asked is returned by `note`."""
        if self.accelerator not in ACCELERATORS:
            return (f"--accelerator {self.accelerator!r} is not one of "
                    f"{', '.join(ACCELERATORS)}")
        if self.devices < 1 or self.num_nodes < 1:
            return f"--devices and --num-nodes must be >= 1, got {self.devices}, {self.num_nodes}"
        gpus = gpu_count()
        if self.accelerator in ("gpu", "cuda") and gpus == 0:
            return ("--accelerator gpu, but this machine has no GPU that torch can use "
                    "(torch.cuda.is_available() is False); use --accelerator cpu or auto")
        if self.on_gpu and self.devices > gpus:
            return f"--devices {self.devices}, but this machine has {gpus} GPU(s)"
        if not self.on_gpu and self.devices > (os.cpu_count() or 1):
            return (f"--devices {self.devices} on CPU asks for more processes than the "
                    f"{os.cpu_count()} cores here")
        return None

    def note(self) -> str | None:
        """A line worth saying once before the cells: DDP over CPU processes (allowed, for
        testing DDP; the metric equals one process's, the cost does not)."""
        if not self.on_gpu and self.devices > 1:
            return (f"note: --devices {self.devices} on CPU runs each cell as {self.devices} "
                    "DDP processes over gloo (for testing DDP; slower than one process)")
        return None


def secondary_rank() -> bool:
    """True in a DDP process other than global rank 0 (Lightning sets these variables
    for the processes it launches)."""
    return any(os.environ.get(v, "0") not in ("", "0") for v in ("LOCAL_RANK", "NODE_RANK"))


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def uses_gpu(accelerator: str) -> bool:
    """Whether a run with this Lightning accelerator ("auto", "gpu", "cuda", "cpu") trains
    on a GPU here."""
    import torch

    return accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available()


@lru_cache(maxsize=1)
def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(accelerator: str = "cpu") -> str:
    import torch

    if uses_gpu(accelerator):
        return torch.cuda.get_device_name(0)
    return f"{cpu_name()} ({os.cpu_count()} cores)"


def check_hardware(hw: Hardware) -> None:
    """UserError for an impossible request (before any cell claims or trains)."""
    problem = hw.check()
    if problem:
        raise UserError(problem)
