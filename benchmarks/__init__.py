"""mlwm-bench: the harness (registry, data/model contract, trainer, runner, records,
leaderboard, CLI). Plugins in `datamodules/` and `models/` import from here (the registry,
the contract, and the shared helpers in `data.py` and `layers.py`), never from each other."""

from .contract import DatasetSpec, Modality, TaskType, ViewSpec
from .errors import UserError
from .registry import (
    create_dataset,
    create_model,
    list_datasets,
    list_models,
    register_dataset,
    register_model,
)

__version__ = "0.1.0"
__all__ = [
    "DatasetSpec", "Modality", "TaskType", "ViewSpec", "UserError",
    "create_dataset", "create_model", "list_datasets", "list_models",
    "register_dataset", "register_model",
]
