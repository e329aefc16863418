"""The shape of the harness: no import circle among its modules, at module or function
level, and data flowing one way (plugin-facing modules <- train <- run <- report <- cli).
Read from the source with ast, so an import inside a function counts as much as one at
the top."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "benchmarks"
PLUGIN_FACING = {"benchmarks", "benchmarks.contract", "benchmarks.data", "benchmarks.errors",
                 "benchmarks.graphs", "benchmarks.layers", "benchmarks.registry",
                 "benchmarks.metrics", "benchmarks.cache"}
# which layer may import which (a layer always imports its own modules and those below)
LAYERS = ["plugin", "train", "checks", "explain", "run", "report", "cli", "perf"]
ALLOWED = {"plugin": {"plugin"}, "train": {"plugin", "train"},
           "checks": {"plugin", "train", "checks"},
           "run": {"plugin", "train", "explain", "run"},
           "report": {"plugin", "train", "explain", "run", "report"},
           "explain": {"plugin", "train", "explain"},
           "cli": set(LAYERS) - {"perf"}, "perf": set(LAYERS)}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """Every benchmarks module a file imports, anywhere in it (relative imports resolved;
    `from pkg import module` counts as importing the module, not the package)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            subs = {f"{target}.{a.name}" for a in node.names} & modules
            out |= subs if len(subs) == len(node.names) else subs | {target}
    return {m for m in out if m in modules and m != name}


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in ROOT.rglob("*.py")}
    return {m: imports_of(p, set(files)) for m, p in files.items()}


def layer(module: str) -> str:
    if module in PLUGIN_FACING:
        return "plugin"
    if module in ("benchmarks.cli", "benchmarks.catalogue"):
        return "cli"
    if module == "benchmarks.checks":
        return "checks"
    if module.startswith("benchmarks.tune"):
        return "run"  # the search runs cells: part of running
    if module.startswith("benchmarks.export"):
        return "report"  # writes a dataset out, as reporting writes results
    return module.split(".")[1]


def test_there_is_no_import_circle():
    g = graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(g[m]):
            if state.get(t) == 1:
                cycle = stack[stack.index(t):] + [t]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m)


def test_data_flows_one_way_between_layers():
    g = graph()
    wrong = sorted(f"{m} ({layer(m)}) imports {t} ({layer(t)})" for m, ts in g.items()
                   for t in ts if layer(t) not in ALLOWED[layer(m)])
    assert not wrong, "\n".join(wrong)


def test_reporting_never_asks_the_registry():
    """Reporting learns what a run knew from the records and the plan, never by looking
    plugins up again."""
    g = graph()
    assert not [m for m, ts in g.items() if layer(m) == "report" and "benchmarks.registry" in ts]
