"""Run records: one JSON file per (suite, dataset, model, seed), written atomically.

`RunRecord` is the one definition of a record: the runner builds it, the readers validate
every file against it (types, finite numbers, statuses, a budget the harness could run),
and `record_schema.json` beside this file is generated from it (`python -m
benchmarks.run.records` rewrites it; a test checks it is current). A record holds
everything needed to read, trust and rerun a cell: the dataset's name, version,
parameters and content hash; the model's name, hyperparameters and parameter count;
seed and training budget; metrics per split; times, throughput and status; the hardware
and package versions.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from ..train.budget import TrainBudget
from ..train.outcome import STOP_REASONS
from .files import ID_PATTERN, MAX_SEED, write_text_atomic

SCHEMA_VERSION = 1
STATUSES = ("ok", "failed", "skipped")
SCHEMA_PATH = Path(__file__).with_name("record_schema.json")  # generated from RunRecord

NonNegative = Annotated[float, Field(ge=0)]
Id = Annotated[str, Field(pattern=f"^{ID_PATTERN.pattern}$")]  # a path component as it stands


class _Strict(BaseModel):
    # strict: `true` is not 1.0 and "3" is not 3; allow_inf_nan=False: no NaN, Infinity
    # or 1e999 (which json.loads would accept as a float)
    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)


class DatasetInfo(_Strict):
    id: Id
    name: str
    version: str
    params: dict[str, Any]
    content_hash: str
    task: Literal["binary", "multiclass", "multilabel", "regression"]
    metric: str
    higher_is_better: bool
    description: str = ""
    view: Literal["vector", "sequence", "image", "set", "graph", "tabular"]
    encoding: str = ""                 # "onehot": the harness's one-hot view of the tokens
    views: list[str] = []
    num_outputs: int | None = None
    input_shape: list[int] = []
    has_ood: bool = False
    sizes: dict[str, Annotated[int, Field(ge=0)]] = {}


class ModelInfo(_Strict):
    id: Id
    name: str
    hparams: dict[str, Any]
    kind: Literal["neural", "fitted"]
    baseline: bool
    n_params: Annotated[int, Field(ge=0)] | None
    param_budget: Annotated[int, Field(ge=1)] | None
    details: dict[str, Any] = {}


class TimeInfo(_Strict):
    train_s: NonNegative | None = None
    eval_s: NonNegative | None = None
    total_s: NonNegative


class EnvironmentInfo(_Strict):
    python: str
    torch: str
    lightning: str
    torchmetrics: str = ""
    platform: str = ""
    device: str
    git_commit: str
    argv: list[str] = []
    threads: Annotated[int, Field(ge=1)] | None = None  # float reductions depend on it


class PredictionsInfo(_Strict):
    """The file beside a record that holds its per-row test predictions and targets (what
    the paired tests of the leaderboard and `mlwm compare` resample)."""

    file: str = Field(pattern=r"^seed[0-9]+\.preds\.npz$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    splits: list[str]


class RunRecord(_Strict):
    """One cell's result. status "ok" carries val and test metrics; "failed" and
    "skipped" carry the reason."""

    schema_version: Literal[1]
    suite: Id
    dataset: DatasetInfo
    model: ModelInfo
    seed: Annotated[int, Field(ge=0, le=MAX_SEED)]
    budget: dict[str, int | float | str]
    status: Literal["ok", "failed", "skipped"]
    reason: str | None
    metrics: dict[str, dict[str, float | None]]
    epochs: Annotated[int, Field(ge=0)]
    best_epoch: int | None = None
    stopped_by: Literal[STOP_REASONS] | None = None  # type: ignore[valid-type]
    time: TimeInfo
    samples_per_s: NonNegative | None = None
    history: list[dict[str, float | None]] = []
    config_hash: str = Field(pattern=r"^[0-9a-f]{16}$")
    environment: EnvironmentInfo
    created: str
    traceback: str | None = None   # failed cells: the last frames, for a bug report
    predictions: PredictionsInfo | None = None
    _path: Path | None = PrivateAttr(default=None)  # where it was read from
    @field_validator("budget")
    @classmethod
    def _budget_runs(cls, budget: dict[str, Any]) -> dict[str, Any]:
        train_budget(budget)
        return budget

    @model_validator(mode="after")
    def _status_consistent(self) -> RunRecord:
        if self.status == "ok":
            if self.reason is not None:
                raise ValueError("an ok record has no reason")
            test = self.metrics.get("test", {})
            if "val" not in self.metrics or not isinstance(test.get(self.dataset.metric), float):
                raise ValueError(f"an ok record needs val metrics and a finite test "
                                 f"{self.dataset.metric}")
        elif not self.reason:
            raise ValueError(f"a {self.status} record needs a reason")
        return self

    # -- reading and writing ------------------------------------------------------------
    @property
    def primary_test(self) -> float | None:
        return self.metrics.get("test", {}).get(self.dataset.metric)

    @property
    def path(self) -> Path | None:
        """The file this record was read from (None for one made in memory)."""
        return self._path

    def predictions_path(self) -> Path | None:
        """The file of its per-row predictions, if it has one and was read from disk."""
        if self.predictions is None or self._path is None:
            return None
        return self._path.with_name(self.predictions.file)

    def to_json(self) -> str:
        data = self.model_dump(mode="json")
        for key in ("traceback", "predictions"):  # absent rather than null: older records
            if data.get(key) is None:
                data.pop(key, None)
        return json.dumps(data, indent=1, allow_nan=False) + "\n"

    def write(self, path: str | Path) -> None:
        write_text_atomic(path, self.to_json())


def train_budget(budget: dict[str, Any]) -> TrainBudget:
    """The TrainBudget a record's budget describes (fields it omits take their neutral
    value); ValueError when it is not one the harness could run."""
    known = TrainBudget.field_types()
    unknown = sorted(set(budget) - set(known))
    if unknown:
        raise ValueError(f"unknown budget field(s) {', '.join(unknown)}")
    missing = [k for k in ("max_epochs", "batch_size", "lr") if k not in budget]
    if missing:
        raise ValueError(f"budget lacks {', '.join(missing)}")
    return TrainBudget(**budget)


class RecordError(ValueError):
    """A file under runs/ that is not a valid record (the message is one line)."""


def parse_record(text: str) -> RunRecord:
    """A record from JSON text, or RecordError saying in one line why it is not one."""
    try:
        return RunRecord.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "record"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise RecordError(f"{where}: {first['msg']}{more}") from None


def read_record(path: str | Path) -> RunRecord:
    """The record in a file, or RecordError saying why the file is not one."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordError(f"unreadable: {exc}") from exc
    record = parse_record(text)
    record._path = Path(path)
    return record


def config_hash(config: dict[str, Any]) -> str:
    """Stable hash of what defines a cell; a record with the same hash is a finished cell."""
    text = json.dumps(config, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a record, generated from RunRecord."""
    schema = RunRecord.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "mlwm-bench run record"
    return schema


def schema_text() -> str:
    return json.dumps(json_schema(), indent=1, sort_keys=True) + "\n"


if __name__ == "__main__":  # python -m benchmarks.run.records: regenerate the schema file
    SCHEMA_PATH.write_text(schema_text())
    print(f"written {SCHEMA_PATH}")
