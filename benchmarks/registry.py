"""Named registries of datasets and models (after timm's `_registry.py`).

    @register_dataset("parity")                 # a LightningDataModule subclass
    class Parity(MathDataModule): ...

    @register_model("mlp", modalities=("vector",))   # a factory: spec + typed hparams
    def mlp(spec, hidden: int = 256, depth: int = 3) -> nn.Module: ...

Registration happens by importing the plugin packages (`datamodules`, `models`), the
`mlwm.plugins` entry points of installed distributions, and `--plugin file.py` files.
The built-in packages are imported lazily: their source is read (not run) into an index
of names, descriptions and parameters, so that `mlwm list`, a misspelt name or an unknown
parameter answers in well under a second, and a plugin module is imported (with torch,
Lightning, sympy ...) only when one of its entries is used. A name registered twice is an
error; an unknown name is an error that lists the closest matches.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import fnmatch
import importlib
import importlib.util
import inspect
import sys
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .contract import Modality, TaskType
from .errors import UserError

PLUGIN_PACKAGES = ("datamodules", "models")
ENTRY_POINT_GROUP = "mlwm.plugins"


@dataclass(frozen=True)
class Param:
    """One typed constructor or factory argument, read from a signature."""

    name: str
    annotation: Any
    default: Any
    required: bool


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    cls: type
    description: str
    params: tuple[Param, ...]
    module: str


@dataclass(frozen=True)
class ModelEntry:
    name: str
    factory: Callable[..., Any]
    modalities: tuple[Modality, ...]
    description: str
    params: tuple[Param, ...]
    module: str
    kind: str = "neural"              # "neural" (nn.Module) or "fitted" (fit/predict)
    baseline: bool = False            # shown as the baseline row of each dataset
    requires: tuple[str, ...] = ()    # importable modules it needs (optional extras)
    tags: tuple[str, ...] = field(default_factory=tuple)
    width: str | None = None          # integer hparam scaled to meet a parameter budget
    tasks: tuple[TaskType, ...] = tuple(TaskType)  # task types it applies to
    check: Callable[[], str | None] | None = None  # extra availability check (Julia, say)
    smoke_hparams: dict[str, Any] = field(default_factory=dict)  # quick settings for tests
    space: dict[str, Any] = field(default_factory=dict)  # its hyperparameter search space

    def unavailable_reason(self) -> str | None:
        """Why the model cannot run here (a missing optional dependency), or None."""
        for mod in self.requires:
            if importlib.util.find_spec(mod) is None:
                return f"needs the optional package {mod!r}, which is not installed"
        return self.check() if self.check is not None else None


_DATASETS: dict[str, DatasetEntry] = {}
_MODELS: dict[str, ModelEntry] = {}


def _first_doc_line(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _signature_params(fn: Callable[..., Any], skip: int) -> tuple[Param, ...]:
    """Typed keyword arguments of a factory (skipping `skip` leading positionals)."""
    sig = inspect.signature(fn)
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolved forward references: fall back to raw annotations
        hints = {}
    out = []
    for i, p in enumerate(sig.parameters.values()):
        if i < skip or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        ann = hints.get(p.name, p.annotation)
        out.append(Param(p.name, ann, p.default, p.default is inspect.Parameter.empty))
    return tuple(out)


def _check_new(kind: str, name: str, table: dict[str, Any], module: str) -> None:
    if name in table:
        raise ValueError(f"{kind} {name!r} is registered twice "
                         f"(in {table[name].module} and in {module}); pick another name")
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"{kind} name {name!r}: use letters, digits, '_' and '-'")


def register_dataset(name: str) -> Callable[[type], type]:
    """Class decorator: register a LightningDataModule subclass under `name`."""

    def wrap(cls: type) -> type:
        _check_new("dataset", name, _DATASETS, cls.__module__)
        cls.name = name
        _DATASETS[name] = DatasetEntry(name, cls, _first_doc_line(cls),
                                       _signature_params(cls.__init__, skip=1), cls.__module__)
        return cls

    return wrap


def register_model(
    name: str,
    *,
    modalities: Iterable[str | Modality],
    kind: str = "neural",
    baseline: bool = False,
    requires: Iterable[str] = (),
    tags: Iterable[str] = (),
    width: str | None = None,
    tasks: Iterable[str | TaskType] = tuple(TaskType),
    check: Callable[[], str | None] | None = None,
    smoke_hparams: dict[str, Any] | None = None,
    space: dict[str, Any] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register a model factory `factory(spec, **hparams)` under `name`.

    modalities: the views the model accepts, in order of preference.
    kind: "neural" returns an nn.Module trained by the common Trainer; "fitted" returns
    an object with fit(x, y) / predict(x) on the vector view (scikit-learn, symbolic
    regression, baselines), scored by the same evaluation.
    requires: modules the model imports lazily; when one is missing its cells are skipped.
    width: the integer hyperparameter the harness scales to meet a parameter budget.
    tasks: the task types the model applies to (symbolic regression: regression only).
    check: returns why the model cannot run here (beyond `requires`), or None.
    smoke_hparams: hyperparameters that make it quick, for the generic tests.
    space: the hyperparameter search space, declared beside the model (benchmarks.tune
    reads it): {name: spec} over the factory's hyperparameters and the training budget's
    lr, weight_decay and batch_size, each spec one of ("float", lo, hi), ("logfloat",
    lo, hi), ("int", lo, hi) or ("choice", [values]). Every family is searched with the
    same number of trials on the validation split only.
    """
    mods = tuple(Modality(m) for m in modalities)
    task_types = tuple(TaskType(t) for t in tasks)
    if kind not in ("neural", "fitted"):
        raise ValueError(f"model {name!r}: kind must be 'neural' or 'fitted', got {kind!r}")

    def wrap(factory: Callable[..., Any]) -> Callable[..., Any]:
        _check_new("model", name, _MODELS, factory.__module__)
        if not mods:
            raise ValueError(f"model {name!r}: declare at least one accepted modality")
        _MODELS[name] = ModelEntry(name, factory, mods, _first_doc_line(factory),
                                   _signature_params(factory, skip=1), factory.__module__,
                                   kind, baseline, tuple(requires), tuple(tags), width,
                                   task_types, check, dict(smoke_hparams or {}),
                                   dict(space or {}))
        if width is not None and width not in {p.name for p in _MODELS[name].params}:
            del _MODELS[name]
            raise ValueError(f"model {name!r}: width={width!r} is not a parameter of its factory")
        return factory

    return wrap


# -- the index of the built-in plugins (their source, read without importing) -----------
@dataclass(frozen=True)
class IndexEntry:
    """A registration found in a plugin package's source: enough to list it and to check
    names and parameter names without importing its module."""

    kind: str                         # "dataset" or "model"
    name: str
    module: str                       # e.g. "datamodules.parity"
    description: str
    params: tuple[tuple[str, str, str], ...]  # (name, annotation, default) as written
    options: dict[str, Any] = field(default_factory=dict)  # literal decorator keywords


_INDEX: dict[tuple[str, str], IndexEntry] | None = None
_imported_all = False
_entry_points_loaded = False


def _decorator_call(dec: ast.expr) -> tuple[str, ast.Call] | None:
    if isinstance(dec, ast.Call):
        func = dec.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
        if name in ("register_dataset", "register_model"):
            return name.removeprefix("register_"), dec
    return None


def _signature_text(fn: ast.FunctionDef, skip: int) -> tuple[tuple[str, str, str], ...]:
    args = fn.args.posonlyargs + fn.args.args
    defaults = [None] * (len(args) - len(fn.args.defaults)) + list(fn.args.defaults)
    out = [(a.arg, ast.unparse(a.annotation) if a.annotation else "",
            ast.unparse(d) if d is not None else "")
           for a, d in list(zip(args, defaults, strict=True))[skip:]]
    out += [(a.arg, ast.unparse(a.annotation) if a.annotation else "",
             ast.unparse(d) if d is not None else "")
            for a, d in zip(fn.args.kwonlyargs, fn.args.kw_defaults, strict=True)]
    return tuple(out)


def _index_file(path: Path, module: str) -> list[IndexEntry]:
    """The registrations written in one plugin file (names given as string literals)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    shared: dict[str, dict[str, Any]] = {}  # NAME = dict(...) at module level, for **NAME
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and \
                isinstance(node.targets[0], ast.Name) and isinstance(node.value, ast.Call) \
                and getattr(node.value.func, "id", "") == "dict":
            literal = {}
            for kw in node.value.keywords:
                try:
                    literal[kw.arg] = ast.literal_eval(kw.value)
                except ValueError:
                    pass
            shared[node.targets[0].id] = literal
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            continue
        for dec in node.decorator_list:
            hit = _decorator_call(dec)
            if hit is None or not hit[1].args or not isinstance(hit[1].args[0], ast.Constant):
                continue
            kind, call = hit
            doc = (ast.get_docstring(node) or "").strip().splitlines()
            if kind == "dataset":
                init = next((b for b in node.body if isinstance(b, ast.FunctionDef)
                             and b.name == "__init__"), None)
                params = _signature_text(init, 1) if init else ()
            else:
                params = _signature_text(node, 1)
            options = {}
            for kw in call.keywords:
                if kw.arg is None and isinstance(kw.value, ast.Name):
                    options.update(shared.get(kw.value.id, {}))
                elif kw.arg:
                    try:
                        options[kw.arg] = ast.literal_eval(kw.value)
                    except ValueError:
                        pass
            found.append(IndexEntry(kind, str(call.args[0].value), module,
                                    doc[0] if doc else "", params, options))
    return found


def plugin_index() -> dict[tuple[str, str], IndexEntry]:
    """(kind, name) -> IndexEntry for every registration in the built-in plugin packages."""
    global _INDEX
    if _INDEX is None:
        _INDEX = {}
        for pkg_name in PLUGIN_PACKAGES:
            spec = importlib.util.find_spec(pkg_name)
            for folder in (spec.submodule_search_locations or []) if spec else []:
                for path in sorted(Path(folder).glob("*.py")):
                    if path.name.startswith("_"):
                        continue
                    for entry in _index_file(path, f"{pkg_name}.{path.stem}"):
                        _INDEX[(entry.kind, entry.name)] = entry
    return _INDEX


# -- loading plugins -------------------------------------------------------------------
def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as exc:  # one broken plugin must not take the suite down
            print(f"mlwm: warning: plugin entry point {ep.name!r} failed to load: {exc}",
                  file=sys.stderr)


def load_plugins(extra_files: Iterable[str | Path] = ()) -> None:
    """Import every built-in plugin module and entry point (once), then plugin files."""
    global _imported_all
    if not _imported_all:
        _imported_all = True
        for module in sorted({e.module for e in plugin_index().values()}):
            importlib.import_module(module)
        _load_entry_points()
    for path in extra_files:
        load_plugin_file(path)


def _import_for(kind: str, name: str) -> None:
    """Import what registers `name`: its built-in module, else the entry points."""
    entry = plugin_index().get((kind, name))
    if entry is not None:
        importlib.import_module(entry.module)
    else:
        _load_entry_points()


_plugin_files: dict[Path, types.ModuleType] = {}


def load_plugin_file(path: str | Path) -> types.ModuleType:
    """Import a user's plugin file (`--plugin my_model.py`) so that it registers itself."""
    path = Path(path).expanduser().resolve()
    if path in _plugin_files:
        return _plugin_files[path]
    if not path.is_file():
        raise UserError(f"plugin file {path} does not exist; pass the path of a .py file")
    mod_name = f"mlwm_plugin_{path.stem}_{abs(hash(path)) % 10**8}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise UserError(f"plugin file {path} is not an importable Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[mod_name]
        raise UserError(f"plugin file {path} failed to import: "
                        f"{type(exc).__name__}: {exc}") from exc
    _plugin_files[path] = module
    return module


# -- lookup ----------------------------------------------------------------------------
def _names(kind: str, table: dict[str, Any]) -> set[str]:
    return set(table) | {n for k, n in plugin_index() if k == kind}


def _unknown(kind: str, name: str, table: dict[str, Any]) -> UserError:
    names = sorted(_names(kind, table))
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return UserError(f"unknown {kind} {name!r}{hint} (`mlwm list` shows all {len(names)})")


def _lookup(kind: str, name: str, table: dict[str, Any]) -> Any:
    if name not in table:
        _import_for(kind, name)
    if name not in table:
        raise _unknown(kind, name, table)
    return table[name]


def check_dataset_name(name: str) -> None:
    """UserError for an unknown dataset name, without importing any plugin module."""
    if name not in _names("dataset", _DATASETS):
        _load_entry_points()
        if name not in _DATASETS:
            raise _unknown("dataset", name, _DATASETS)


def check_model_name(name: str) -> None:
    """UserError for an unknown model name, without importing any plugin module."""
    if name not in _names("model", _MODELS):
        _load_entry_points()
        if name not in _MODELS:
            raise _unknown("model", name, _MODELS)


_ANNOTATION_NAMES = {"int": int, "float": float, "str": str, "bool": bool, "None": None,
                     "Literal": typing.Literal, "Any": Any, "tuple": tuple, "list": list}


def _indexed_params(kind: str, name: str) -> tuple[Param, ...] | None:
    """A built-in entry's parameters typed from its source (annotations of the simple
    kinds a plugin uses; any other is left unchecked here), or None if not indexed."""
    entry = plugin_index().get((kind, name))
    if entry is None:
        return None
    params = []
    for pname, annotation, default in entry.params:
        try:  # our own plugins' annotations, in a namespace of types only
            ann = eval(annotation, {"__builtins__": {}}, _ANNOTATION_NAMES) if annotation \
                else inspect.Parameter.empty
        except Exception:
            ann = Any
        params.append(Param(pname, ann, default or None, not default))
    return tuple(params)


def check_params(kind: str, name: str, given: dict[str, Any]) -> None:
    """UserError for a parameter a built-in dataset or model does not have, or of the
    wrong type, read from its source: no import, so the error comes at once. Ranges are
    checked when the plugin builds."""
    params = _indexed_params(kind, name)
    if params is not None:
        bind_params(kind, name, tuple(dataclasses.replace(p, required=False) for p in params),
                    given)


def get_dataset_entry(name: str) -> DatasetEntry:
    return _lookup("dataset", name, _DATASETS)


def get_model_entry(name: str) -> ModelEntry:
    return _lookup("model", name, _MODELS)


def list_datasets(pattern: str = "*") -> list[str]:
    """Registered dataset names matching a shell-style wildcard, sorted."""
    return sorted(n for n in _names("dataset", _DATASETS) if fnmatch.fnmatchcase(n, pattern))


def list_models(pattern: str = "*", modality: str | Modality | None = None) -> list[str]:
    """Registered model names matching a wildcard (and accepting `modality`), sorted."""
    names = [n for n in _names("model", _MODELS) if fnmatch.fnmatchcase(n, pattern)]
    if modality is not None:
        m = Modality(modality)
        names = [n for n in names if m in get_model_entry(n).modalities]
    return sorted(names)


def baseline_models() -> list[str]:
    """The models that declare baseline=True (every suite's baseline rows), from the index
    and from the plugins registered so far."""
    _load_entry_points()
    indexed = {e.name for e in plugin_index().values()
               if e.kind == "model" and e.options.get("baseline")}
    return sorted(indexed | {n for n, e in _MODELS.items() if e.baseline})


# -- typed arguments -------------------------------------------------------------------
def _type_name(ann: Any) -> str:
    if typing.get_origin(ann) is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(ann))
    if typing.get_origin(ann) in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(ann))
    return getattr(ann, "__name__", str(ann))


def _coerce(value: Any, ann: Any) -> tuple[bool, Any]:
    """(ok, value) for a value checked against a simple annotation."""
    if ann is inspect.Parameter.empty or ann is Any:
        return True, value
    origin = typing.get_origin(ann)
    if origin is typing.Literal:
        return (value in typing.get_args(ann)), value
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(ann):
            ok, v = _coerce(value, arg)
            if ok:
                return True, v
        return False, value
    if ann is type(None):
        return value is None, value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            return False, value
        return True, origin(value)
    if ann is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, float(value)
        return False, value
    if ann is int:
        return (isinstance(value, int) and not isinstance(value, bool)), value
    if isinstance(ann, type):
        return isinstance(value, ann), value
    return True, value


def bind_params(kind: str, name: str, params: tuple[Param, ...],
                given: dict[str, Any]) -> dict[str, Any]:
    """Check user-given arguments against a typed signature; one clear line on error."""
    known = {p.name: p for p in params}
    out: dict[str, Any] = {}
    for key, value in given.items():
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=2, cutoff=0.5)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            accepted = ", ".join(known) or "none"
            raise UserError(f"{kind} {name!r} has no parameter {key!r}{hint}; "
                            f"it accepts: {accepted}")
        ok, coerced = _coerce(value, known[key].annotation)
        if not ok:
            raise UserError(f"{kind} {name!r}: parameter {key!r} must be "
                            f"{_type_name(known[key].annotation)}, got {value!r}")
        out[key] = coerced
    missing = [p.name for p in params if p.required and p.name not in out]
    if missing:
        raise UserError(f"{kind} {name!r} needs parameter(s) {', '.join(missing)}")
    return out


def defaults(params: tuple[Param, ...]) -> dict[str, Any]:
    return {p.name: p.default for p in params if not p.required}


def create_dataset(name: str, **params: Any) -> Any:
    """Instantiate a registered datamodule with checked parameters."""
    entry = get_dataset_entry(name)
    dm = entry.cls(**bind_params("dataset", name, entry.params, params))
    if entry.params and not getattr(dm, "hparams", None):
        raise UserError(f"dataset {name!r} ({entry.module}) did not record its parameters: "
                        "call self.save_hyperparameters() at the end of its __init__")
    return dm


def create_model(name: str, spec: Any, **hparams: Any) -> Any:
    """Build a registered model for a dataset spec (already narrowed to a view)."""
    entry = get_model_entry(name)
    if spec.modality not in entry.modalities:
        accepted = ", ".join(m.value for m in entry.modalities)
        raise UserError(f"model {name!r} accepts {accepted}, not the {spec.modality.value} "
                        f"view of dataset {spec.name!r}")
    return entry.factory(spec, **bind_params("model", name, entry.params, hparams))


def all_dataset_entries() -> list[DatasetEntry]:
    """Every dataset entry (imports every plugin module)."""
    load_plugins()
    return [_DATASETS[n] for n in sorted(_DATASETS)]


def all_model_entries() -> list[ModelEntry]:
    """Every model entry (imports every plugin module)."""
    load_plugins()
    return [_MODELS[n] for n in sorted(_MODELS)]


def unregister(kind: str, name: str) -> None:
    """Remove an entry (tests that register throw-away plugins clean up with this)."""
    table = _DATASETS if kind == "dataset" else _MODELS
    table.pop(name, None)
