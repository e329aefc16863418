"""Suites: small TOML files naming datasets, models, seeds and a training budget.

    description = "what this suite is for"
    seeds = [0, 1, 2]
    data_seeds = "follow"    # each seed re-draws the data split too ("fixed": it does not)
    param_budgets = [10000, 100000]   # every neural family at these sizes

    [budget]                 # benchmarks.train.budget.TrainBudget fields
    max_epochs = 30

    [tuning]                 # optional: an equal search per (dataset, family, budget)
    trials = 16
    seed = 0

    [[datasets]]
    name = "descents"
    id = "descents-left-matrix"          # optional label; defaults to the name
    params = { side = "left", encoding = "matrix" }
    budget = { max_epochs = 60 }         # optional: this dataset's changes to [budget]
    rows = { train = 20000, test = 5000 }  # optional: a seeded subsample of large splits
    seeds = [0, 1, 2, 3, 4, 5, 6]        # optional: its own seeds (where seeds split)

    [[models]]
    name = "mlp"
    hparams = { hidden = 128 }
    datasets = ["parity*"]               # optional wildcard filter
    param_budgets = [10000, 100000]      # optional: one row per budget, width scaled
                                         # (a top-level param_budgets applies to all)
    view = "vector"                      # optional: read this view (here the dataset's own
                                         # vector encoding, not the one-hot tokens)

    longer = "reference-long"            # optional: a suite that reruns this one's
                                         # not-converged rows with a larger epoch cap

    [[contrasts]]                        # a published result, shown as its own table
    name = "MNIST-1D: CNN > GRU > MLP > logistic"
    dataset = "mnist1d"
    models = ["cnn1d", "gru", "mlp", "linear"]   # a family's largest budget (cnn1d@100k),
                                                 # or name one (cnn1d@10k)

A suite can extend another (`extends = "reference"`, a built-in name or a path relative
to the file): it has the other's keys, with its own top-level keys in their place (and
its own [budget] keys in place of the other's, one by one). Its
`seeds`, if given, replace every dataset's seeds as well (so `seeds = [0]` is seed 0
everywhere); its `param_budgets`, if given, replace the other's for every model that
does not name its own. `make benchmark`'s `default` is `reference` at one budget, and
`tuned` is `reference`'s search: both extend it, so their cells cannot drift apart.

Every model runs on every dataset it is compatible with; the registered baseline models
(those that declare baseline=True) are added unless `baseline = false`. Ids (a dataset's
`id`, a model's `id` and the suite's name) are path components as they stand, checked
here. Nothing in a suite is evaluated as code.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..train.budget import TrainBudget
from .files import MAX_SEED, id_problem

SUITES_DIR = Path(__file__).resolve().parents[1] / "suites"


def format_budget(budget: int) -> str:
    """10000 -> '10k', 1500000 -> '1.5M' (a parameter budget in a model id)."""
    for div, unit in ((1_000_000, "M"), (1_000, "k")):
        if budget >= div:
            return f"{budget / div:g}{unit}"
    return str(budget)


@dataclass(frozen=True)
class DatasetConfig:
    id: str
    name: str
    params: dict[str, Any] = field(default_factory=dict)
    budget: dict[str, Any] = field(default_factory=dict)  # overrides of the suite's [budget]
    rows: dict[str, int] = field(default_factory=dict)    # a seeded subsample per split
    seeds: tuple[int, ...] | None = None  # this dataset's own seeds (more where they split)


@dataclass(frozen=True)
class ModelConfig:
    id: str
    name: str
    hparams: dict[str, Any] = field(default_factory=dict)
    datasets: tuple[str, ...] = ("*",)
    param_budget: int | None = None   # scale the width hparam to this many parameters
    view: str | None = None           # the view it reads ("vector": the dataset's own
                                      # encoding); None: its order of preference

    def applies_to(self, dataset_id: str) -> bool:
        return any(fnmatch.fnmatchcase(dataset_id, pat) for pat in self.datasets)


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    seeds: tuple[int, ...]
    budget: TrainBudget
    datasets: tuple[DatasetConfig, ...]
    models: tuple[ModelConfig, ...]
    path: str = ""
    baseline: bool = True   # add the registered baseline models (plan_suite does)
    data_seeds: str = "follow"  # "follow": each seed re-draws the data (data_seed = seed)
                                # as well as the initialisation; "fixed": data_seed stays
    tuning: dict[str, int] = field(default_factory=dict)  # {"trials": n, "seed": s}
    tuned_from: str = ""        # reuse another suite's committed tuned configurations
    contrasts: tuple[dict[str, Any], ...] = ()  # published results the reference shows
    explain: tuple[str, ...] = ()  # attribution methods after each cell of a dataset that
                                   # declares ground truth (explain = true: all of them)
    longer: str = ""  # a suite that trains this one's not-converged rows longer: the
                      # leaderboard sets them side by side where its records are


_TOP_KEYS = {"description": str, "seeds": list, "budget": dict, "datasets": list,
             "models": list, "baseline": bool, "param_budgets": list, "data_seeds": str,
             "tuning": dict, "tuned_from": str, "contrasts": list, "explain": object,
             "longer": str}
_DATASET_KEYS = {"name": str, "id": str, "params": dict, "budget": dict, "rows": dict,
                 "seeds": list}
_MODEL_KEYS = {"name": str, "id": str, "hparams": dict, "datasets": list,
               "param_budgets": list, "view": str}
_CONTRAST_KEYS = {"name": str, "source": str, "dataset": str, "models": list,
                  "expected": str, "split": str}
SPLIT_NAMES = ("train", "val", "test", "ood_test")


def available_suites() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.toml"))


def resolve_suite_path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise UserError(f"suite file {path} does not exist")
        return path
    candidate = SUITES_DIR / f"{name_or_path}.toml"
    if candidate.is_file():
        return candidate
    import difflib

    close = difflib.get_close_matches(name_or_path, available_suites(), n=3, cutoff=0.4)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise UserError(f"unknown suite {name_or_path!r}{hint} (built-in suites: "
                    f"{', '.join(available_suites())}; or pass a path to a .toml file)")


def _check_table(where: str, table: dict[str, Any], schema: dict[str, type]) -> None:
    for key, value in table.items():
        if key not in schema:
            raise UserError(f"{where}: unknown key {key!r}; expected one of "
                            f"{', '.join(schema)}")
        expected = schema[key]
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise UserError(f"{where}: key {key!r} must be {_toml_type(expected)}, "
                            f"got {type(value).__name__} {value!r}")


def _toml_type(t: type) -> str:
    return {str: "a string", list: "a list", dict: "a table", bool: "a boolean",
            int: "an integer", float: "a number"}.get(t, t.__name__)


def make_budget(where: str, table: dict[str, Any]) -> TrainBudget:
    """A checked TrainBudget from a [budget] table; errors are one line naming `where`."""
    types = TrainBudget.field_types()
    values = {}
    for key, value in table.items():
        if key not in types:
            raise UserError(f"{where}: unknown key {key!r} in [budget]; expected one of "
                            f"{', '.join(types)}")
        want = types[key]
        ok = isinstance(value, want) and not isinstance(value, bool)
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise UserError(f"{where}: budget key {key!r} must be {_toml_type(want)}, "
                            f"got {value!r}")
        values[key] = value
    try:
        return TrainBudget(**values)
    except ValueError as exc:  # a field outside its domain (lr = inf, weight_decay < 0)
        raise UserError(f"{where}: {exc}") from None


def _checked_id(where: str, what: str, value: Any, seen: dict[str, str]) -> str:
    """An id that is a valid path component and not a duplicate of another (compared
    case-insensitively: on macOS "Parity" and "parity" are one folder)."""
    problem = id_problem(value)
    if problem:
        raise UserError(f"{where}: {what} {problem}")
    key = value.casefold()
    if key in seen:
        raise UserError(f"{where}: {what} {value!r} appears twice"
                        + (f" (as {seen[key]!r})" if seen[key] != value else "")
                        + "; give each an `id`")
    seen[key] = value
    return value


def parse_suite(data: dict[str, Any], name: str, where: str | None = None) -> Suite:
    """A Suite from parsed TOML, with one-line errors naming the file and key."""
    where = where or f"suite {name!r}"
    problem = id_problem(name)
    if problem:
        raise UserError(f"{where}: the suite's name {problem} (rename the file or pass "
                        "--suite-name)")
    _check_table(where, data, _TOP_KEYS)
    budget = make_budget(where, data.get("budget", {}))
    seeds = _seeds(where, data.get("seeds", [0]))
    if data.get("data_seeds", "follow") not in ("follow", "fixed"):
        raise UserError(f"{where}: data_seeds must be \"follow\" (each seed re-draws the "
                        f"data) or \"fixed\", got {data['data_seeds']!r}")
    tuning = data.get("tuning", {})
    for key, value in tuning.items():
        if key not in ("trials", "seed") or not isinstance(value, int) or isinstance(value, bool) \
                or value < (1 if key == "trials" else 0):
            raise UserError(f"{where}: [tuning] takes trials (an integer >= 1) and seed (an "
                            f"integer >= 0); got {key} = {value!r}")
    contrasts = []
    for i, c in enumerate(data.get("contrasts", [])):
        w = f"{where}: contrasts[{i}]"
        if not isinstance(c, dict):
            raise UserError(f"{w} must be a table ([[contrasts]])")
        _check_table(w, c, _CONTRAST_KEYS)
        if not {"name", "dataset", "models"} <= set(c):
            raise UserError(f"{w} needs name, dataset and models")
        contrasts.append(dict(c))
    datasets: list[DatasetConfig] = []
    seen: dict[str, str] = {}
    for i, d in enumerate(data.get("datasets", [])):
        w = f"{where}: datasets[{i}]"
        if not isinstance(d, dict):
            raise UserError(f"{w} must be a table ([[datasets]])")
        _check_table(w, d, _DATASET_KEYS)
        if "name" not in d:
            raise UserError(f"{w} needs a name")
        overrides = {}
        if "budget" in d:  # checked and typed now, merged into each cell's budget by the runner
            merged = make_budget(f"{w}.budget", {**dataclasses.asdict(budget), **d["budget"]})
            overrides = {k: getattr(merged, k) for k in d["budget"]}
        rows = dict(d.get("rows", {}))
        for split, n in rows.items():
            if split not in SPLIT_NAMES or not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise UserError(f"{w}: rows takes {', '.join(SPLIT_NAMES)} with integers >= 1; "
                                f"got {split} = {n!r}")
        cfg = DatasetConfig(_checked_id(w, "dataset id", d.get("id", d["name"]), seen),
                            d["name"], dict(d.get("params", {})), overrides, rows,
                            _seeds(w, d["seeds"]) if "seeds" in d else None)
        datasets.append(cfg)
    models: list[ModelConfig] = []
    seen = {}
    for i, m in enumerate(data.get("models", [])):
        w = f"{where}: models[{i}]"
        if not isinstance(m, dict):
            raise UserError(f"{w} must be a table ([[models]])")
        _check_table(w, m, _MODEL_KEYS)
        if "name" not in m:
            raise UserError(f"{w} needs a name")
        pats = m.get("datasets", ["*"])
        if not all(isinstance(p, str) for p in pats):
            raise UserError(f"{w}: datasets must be a list of strings (wildcards allowed)")
        budgets = m.get("param_budgets", data.get("param_budgets", [None])
                        if _scalable(m["name"]) else [None])
        if not budgets or not all(b is None or (isinstance(b, int) and not isinstance(b, bool)
                                                and b > 0) for b in budgets):
            raise UserError(f"{w}: param_budgets must be a list of positive integers")
        for b in budgets:
            base = m.get("id", m["name"])
            mid = base if b is None else f"{base}@{format_budget(b)}"
            models.append(ModelConfig(_checked_id(w, "model id", mid, seen), m["name"],
                                      dict(m.get("hparams", {})), tuple(pats), b,
                                      m.get("view")))
    if not datasets or not models:
        raise UserError(f"{where}: a suite needs at least one [[datasets]] and one [[models]]")
    contrasts = [{**c, "models": [_contrast_model(f"{where}: contrast {c['name']!r}", m, models)
                                  for m in c["models"]]} for c in contrasts]
    explain = data.get("explain", False)
    methods = ("saliency", "ig", "shap", "permutation")
    if explain is True:
        explain = methods
    elif explain is False:
        explain = ()
    elif not (isinstance(explain, list) and set(explain) <= set(methods)):
        raise UserError(f"{where}: explain must be true, false or a list of methods "
                        f"({', '.join(methods)}); got {explain!r}")
    longer = data.get("longer", "")
    if longer and id_problem(longer):
        raise UserError(f"{where}: longer names a suite: {id_problem(longer)}")
    return Suite(name, data.get("description", ""), tuple(seeds), budget, tuple(datasets),
                 tuple(models), baseline=data.get("baseline", True), explain=tuple(explain),
                 data_seeds=data.get("data_seeds", "follow"), tuning=dict(tuning),
                 tuned_from=data.get("tuned_from", ""), contrasts=tuple(contrasts),
                 longer=longer)


def _contrast_model(where: str, given: Any, models: list[ModelConfig]) -> str:
    """A contrast's model id: as given where the suite has it; a model's id without a
    budget ("cnn1d", "mlp-scalar") stands for its largest budget in this suite."""
    ids = {m.id for m in models}
    if not isinstance(given, str):
        raise UserError(f"{where}: models must be a list of model ids, got {given!r}")
    if given in ids or given == "constant" or "@" in given:
        return given  # ids with a budget and baselines are checked where the table is built
    sized = [m for m in models if m.id.split("@")[0] == given and m.param_budget is not None]
    if sized:
        return max(sized, key=lambda m: m.param_budget).id
    return given


def _scalable(model: str) -> bool:
    """Whether a suite-wide param_budgets applies to a model: it declares a width (read
    from the plugins' source, or from a registered plugin file's model). A fitted model
    (linear, gboost, the baseline) has no width and keeps one row."""
    from .. import registry

    entry = registry.plugin_index().get(("model", model))
    if entry is not None:
        return bool(entry.options.get("width"))
    try:
        return registry.get_model_entry(model).width is not None
    except UserError:
        return True  # an unknown name fails at planning with its own message


def _seeds(where: str, seeds: Any) -> tuple[int, ...]:
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= MAX_SEED
                            for s in seeds):
        raise UserError(f"{where}: seeds must be a non-empty list of integers in "
                        f"0..{MAX_SEED}, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise UserError(f"{where}: seeds repeat: {seeds!r}")
    return tuple(seeds)


def with_budget(suite: Suite, **changes: Any) -> Suite:
    """The suite with these [budget] fields for every dataset: a command line's flags win
    over the file's [budget] and its per-dataset budgets."""
    if not changes:
        return suite
    budget = make_budget("command line", {**dataclasses.asdict(suite.budget), **changes})
    datasets = tuple(dataclasses.replace(d, budget={k: v for k, v in d.budget.items()
                                                    if k not in changes})
                     for d in suite.datasets)
    return dataclasses.replace(suite, budget=budget, datasets=datasets)


def load_suite(name_or_path: str, suite_name: str | None = None) -> Suite:
    """A built-in suite by name, or a suite file by path. A suite's records live under its
    name, so a file elsewhere that is named like a built-in suite ("default.toml") would
    write over that suite's records (the committed reference): it needs `suite_name`,
    either another name or, to replace them on purpose, the built-in's own."""
    path = resolve_suite_path(name_or_path)
    data = _read_extended(path, ())
    builtin = path.resolve().parent == SUITES_DIR.resolve()
    name = suite_name or path.stem
    if suite_name is None and not builtin and path.stem in available_suites():
        raise UserError(f"suite file {path} has the name of the built-in suite {path.stem!r}, "
                        f"whose records (the reference) it would mix with; pass --suite-name "
                        f"OTHER to name it, or --suite-name {path.stem} to replace them on "
                        "purpose")
    suite = parse_suite(data, name, where=f"suite file {path}")
    return dataclasses.replace(suite, path=str(path))


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"suite file {path} is not UTF-8 text ({exc.reason} at byte "
                        f"{exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise UserError(f"suite file {path} cannot be read ({exc.strerror or exc})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"suite file {path}: TOML syntax error: {exc}") from exc


def _read_extended(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    """A suite file's table with the suite it extends merged under it (see the module
    docstring): its own top-level keys win; its seeds replace every dataset's seeds."""
    data = _read_toml(path)
    base_name = data.pop("extends", None)
    if base_name is None:
        return data
    where = f"suite file {path}"
    if not isinstance(base_name, str):
        raise UserError(f"{where}: extends must be a suite name or a .toml path, got "
                        f"{base_name!r}")
    relative = path.parent / base_name
    try:
        base_path = relative if relative.suffix == ".toml" and relative.is_file() \
            else resolve_suite_path(base_name)
    except UserError as exc:
        raise UserError(f"{where}: extends: {exc}") from None
    resolved = base_path.resolve()
    if resolved in chain or resolved == path.resolve():
        names = " -> ".join(p.stem for p in (*chain, path.resolve(), resolved))
        raise UserError(f"{where}: extends goes round in a circle ({names}); a suite "
                        "cannot extend itself")
    base = _read_extended(base_path, (*chain, path.resolve()))
    if "seeds" in data and "datasets" not in data:
        base["datasets"] = [{k: v for k, v in d.items() if k != "seeds"} if isinstance(d, dict)
                            else d for d in base.get("datasets", [])]
    merged = {**base, **data}
    if isinstance(base.get("budget"), dict) and isinstance(data.get("budget"), dict):
        merged["budget"] = {**base["budget"], **data["budget"]}  # [budget] keys one by one
    return merged
