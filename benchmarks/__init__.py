"""mlwm-bench: the harness (registry, data/model contract, trainer, runner, records,
leaderboard, CLI). Plugins in `datamodules/` and `models/` import only the registry and
the contract from here."""

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
