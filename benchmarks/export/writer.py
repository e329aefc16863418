"""`mlwm export`: a dataset's splits as files anyone can load, with a datasheet.

    mlwm export --dataset kl_polynomials --param n=5 --format parquet OUT/

Parquet: one file per split (OUT/<split>.parquet), one row per example, a column per
tensor view (the flattened per-sample values as a list: "vector", "sequence" tokens,
"image", "set" with its "set_mask") and "target"; each view's per-sample shape is in the
file's metadata and the datasheet. Graph views are not tabular and are left out (the
datasheet says so; the vector view holds the same graphs as padded adjacency). NPZ: one
file per split with an array per view and "target". The datasheet (datasheet.json and
README.md) holds the spec, parameters, version, content hash and the mathematics.
"""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path
from typing import Any

from ..contract import ONEHOT, Modality
from ..errors import UserError

FORMATS = ("parquet", "npz")


def _views(dm: Any) -> list[Any]:
    """The views worth exporting: the dataset's own, not graphs, not the one-hot copy."""
    return [v for v in dm.spec.views if v.modality is not Modality.GRAPH and v.encoding != ONEHOT]


def _column(x: Any) -> Any:
    return x.reshape(len(x), -1).numpy()


def _arrays(dm: Any, split: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for v in _views(dm):
        x = dm.inputs(split, v.key)
        if v.modality is Modality.SET:
            out["set"] = _column(x["x"])
            out["set_mask"] = _column(x["mask"])
        else:
            out[v.modality.value] = _column(x)
    y = dm.target(split)
    out["target"] = y.reshape(len(y), -1).numpy() if y.ndim > 1 else y.numpy()
    return out


def datasheet(dm: Any) -> dict[str, Any]:
    """What a user of the files must know: spec, parameters, version, content hash, the
    layout of every column, and the mathematics (the datamodule's docstring)."""
    spec = dm.spec
    module = sys.modules[type(dm).__module__]
    return {
        "name": dm.name, "version": dm.version, "params": dm.params,
        "content_hash": dm.content_hash, "task": spec.task.value, "metric": spec.metric,
        "higher_is_better": spec.higher_is_better, "num_outputs": spec.num_outputs,
        "description": spec.description, "ground_truth": spec.ground_truth,
        "splits": {s: dm.split_size(s) for s in dm.splits},
        "columns": {("set" if v.modality is Modality.SET else v.modality.value):
                    {"shape": list(v.shape), "vocab_size": v.vocab_size}
                    for v in _views(dm)},
        "left_out": [v.key for v in spec.views if v.modality is Modality.GRAPH],
        "mathematics": inspect.getdoc(module) or "",
        "made_by": "mlwm-bench (mlwm export)",
    }


def export(dm: Any, out: str | Path, fmt: str) -> list[Path]:
    """Write the splits and the datasheet into `out`; the paths written."""
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dm.prepare_data()
    dm.setup("fit")
    sheet = datasheet(dm)
    written = []
    for split in dm.splits:
        arrays = _arrays(dm, split)
        if fmt == "npz":
            import numpy as np

            path = out / f"{split}.npz"
            np.savez_compressed(path, **arrays)
        else:
            path = out / f"{split}.parquet"
            _write_parquet(path, arrays, sheet)
        written.append(path)
    (out / "datasheet.json").write_text(json.dumps(sheet, indent=1, default=str) + "\n")
    (out / "README.md").write_text(_readme(sheet, fmt))
    return written + [out / "datasheet.json", out / "README.md"]


def _write_parquet(path: Path, arrays: dict[str, Any], sheet: dict[str, Any]) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise UserError("--format parquet needs pyarrow: pip install 'mlwm-bench[export]' "
                        "(or use --format npz)") from exc
    columns = {}
    for name, values in arrays.items():
        columns[name] = pa.array(list(values)) if values.ndim > 1 else pa.array(values)
    table = pa.table(columns).replace_schema_metadata(
        {"mlwm": json.dumps({k: sheet[k] for k in ("name", "version", "params", "content_hash",
                                                   "columns")}, default=str)})
    pq.write_table(table, path)


def _readme(sheet: dict[str, Any], fmt: str) -> str:
    cols = "\n".join(f"- `{c}`: per-sample shape {v['shape']}"
                     + (f", tokens 1..{v['vocab_size'] - 1} (0 is padding)" if v["vocab_size"]
                        else "") for c, v in sheet["columns"].items())
    load = ('from datasets import load_dataset\n'
            'ds = load_dataset("parquet", data_files={"train": "train.parquet", '
            '"test": "test.parquet"})') if fmt == "parquet" else \
        'import numpy as np\ntrain = np.load("train.npz")'
    return (f"# {sheet['name']} (version {sheet['version']})\n\n{sheet['description']}\n\n"
            f"Task: {sheet['task']}, primary metric {sheet['metric']}. Content hash "
            f"`{sheet['content_hash']}`. Parameters: `{json.dumps(sheet['params'], default=str)}`."
            f"\n\nSplits: {', '.join(f'{s} {n}' for s, n in sheet['splits'].items())}.\n\n"
            f"Columns (each sample flattened to a list; `target` is the label):\n{cols}\n\n"
            f"```python\n{load}\n```\n\n## The mathematics\n\n{sheet['mathematics']}\n")
