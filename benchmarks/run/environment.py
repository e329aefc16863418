"""What a record says about where it ran: versions, device, thread count and git commit."""

from __future__ import annotations

import functools
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..train.hardware import device_name

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """HEAD of the checkout the code runs from, with "-dirty" when tracked files differ
    (results/ is left out: a run writing its own records does not dirty the next one)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
                             text=True, timeout=5)
        commit = out.stdout.strip()
        if out.returncode != 0 or not commit:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                ".", ":(exclude)results"],
                               cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=5)
        return commit + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment(accelerator: str = "cpu") -> dict[str, Any]:
    import lightning
    import torch
    import torchmetrics

    return {
        "python": platform.python_version(), "torch": torch.__version__,
        "lightning": lightning.__version__, "torchmetrics": torchmetrics.__version__,
        "platform": platform.platform(), "device": device_name(accelerator),
        "git_commit": git_commit(), "argv": sys.argv[1:],
        # float reductions depend on the thread count: a rerun must use the same one
        "threads": torch.get_num_threads(),
    }
