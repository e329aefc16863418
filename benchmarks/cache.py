"""Where mlwm-bench caches what it can make again: generated datasets and the plugin
catalogue ($MLWM_CACHE, else ~/.cache/mlwm-bench). Deleting the folder is always safe."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The cache folder ($MLWM_CACHE, else ~/.cache/mlwm-bench)."""
    return Path(os.environ.get("MLWM_CACHE", Path.home() / ".cache" / "mlwm-bench"))
