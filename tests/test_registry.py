"""Registry and contract: names, duplicates, suggestions, typed parameters, spec checks."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from benchmarks import registry
from benchmarks.contract import DatasetSpec, Modality, SpecError, TaskType, ViewSpec
from benchmarks.errors import UserError


def test_every_plugin_is_registered():
    assert {"parity", "descents"} <= set(registry.list_datasets())
    assert {"mlp", "constant"} <= set(registry.list_models())


def test_wildcard_listing():
    assert registry.list_datasets("par*") == [n for n in registry.list_datasets() if n.startswith("par")]
    assert "mlp" in registry.list_models("m*")
    assert "mlp" in registry.list_models(modality="vector")
    assert all(Modality.GRAPH in registry.get_model_entry(m).modalities
               for m in registry.list_models(modality="graph"))


def test_duplicate_name_is_an_error():
    with pytest.raises(ValueError, match="registered twice"):
        @registry.register_model("mlp", modalities=("vector",))
        def another_mlp(spec):  # pragma: no cover - never built
            return None


def test_unknown_names_suggest_the_closest():
    with pytest.raises(UserError, match="did you mean parity"):
        registry.get_dataset_entry("parrity")
    with pytest.raises(UserError, match="did you mean mlp"):
        registry.create_model("mpl", None)


def test_typed_parameters_are_checked():
    with pytest.raises(UserError, match="has no parameter 'nn'.*did you mean n"):
        registry.create_dataset("parity", nn=3)
    with pytest.raises(UserError, match="parameter 'n' must be int, got '8'"):
        registry.create_dataset("parity", n="8")
    with pytest.raises(UserError, match="'side' must be 'right' \\| 'left'"):
        registry.create_dataset("descents", side="up")
    dm = registry.create_dataset("parity", n=14)
    assert dm.params["n"] == 14


def test_out_of_range_parameter_names_the_range():
    with pytest.raises(UserError, match=r"n=1 is out of range; accepted: 2 <= n <= 4096"):
        registry.create_dataset("parity", n=1)
    with pytest.raises(UserError, match="distinct strings"):
        registry.create_dataset("parity", n=4, n_train=100)


def test_model_for_incompatible_view_is_refused():
    spec = registry.create_dataset("parity").spec.for_view("sequence")
    with pytest.raises(UserError, match="accepts vector, tabular"):
        registry.create_model("mlp", spec)


def _spec(**kw):
    base = dict(name="t", version="1", task=TaskType.BINARY, num_outputs=1,
                views=(ViewSpec(Modality.VECTOR, (3,)),))
    base.update(kw)
    return DatasetSpec(**base)


def test_spec_validation():
    assert _spec().metric == "acc" and _spec().higher_is_better is True
    assert _spec(task=TaskType.REGRESSION, metric="mse").higher_is_better is False
    with pytest.raises(SpecError, match="not computed for binary"):
        _spec(metric="r2")
    with pytest.raises(SpecError, match="num_outputs=1"):
        _spec(num_outputs=2)
    with pytest.raises(SpecError, match="vector"):
        _spec(views=(ViewSpec(Modality.IMAGE, (1, 2, 2)),))
    with pytest.raises(SpecError, match="vocab_size"):
        ViewSpec(Modality.SEQUENCE, (4,))
    with pytest.raises(SpecError, match="no image view"):
        _spec().for_view("image")
    spec = _spec(views=(ViewSpec(Modality.SEQUENCE, (4,), 3), ViewSpec(Modality.VECTOR, (4,))))
    assert spec.modality is Modality.SEQUENCE
    assert spec.for_view("vector").input_shape == (4,)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "other"  # frozen


def test_plugin_file_that_fails_names_the_file(tmp_path):
    bad = tmp_path / "bad_plugin.py"
    bad.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(UserError, match="bad_plugin.py failed to import: RuntimeError: boom"):
        registry.load_plugin_file(bad)


@pytest.mark.parametrize("argv", [
    ["run", "--dataset", "parityy", "--model", "mlp"],
    ["run", "--dataset", "parity", "--model", "mlp", "--param", "n=x"],
    ["run", "--dataset", "parity", "--model", "mlpp"],
    ["benchmark", "--suite", "nosuch"],
    ["list"],
])
def test_errors_and_list_import_nothing_heavy(argv):
    """A one-line error (and `mlwm list`) must not pay for Lightning, torch_geometric,
    sympy or scikit-learn: what keeps them under a second (benchmarks.perf.startup)."""
    import subprocess
    import sys

    code = (f"import sys; from benchmarks.cli import main; rc = main({argv!r}); "
            "heavy = [m for m in ('lightning', 'torch_geometric', 'sympy', 'sklearn') "
            "if m in sys.modules]; print(rc, heavy)")
    root = Path(__file__).resolve().parents[1]
    # `list` reads the catalogue cached on disk; the first run in a fresh cache builds it
    subprocess.run([sys.executable, "-m", "benchmarks.cli", "list"], capture_output=True,
                   cwd=root)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    rc, heavy = out.stdout.strip().splitlines()[-1].split(" ", 1)
    assert heavy == "[]", (argv, heavy, out.stderr[-500:])
    assert rc == ("0" if argv == ["list"] else "2"), out.stderr[-500:]


BROKEN_PLUGIN = '''
from torch import nn
from benchmarks import register_model

@register_model("wrong_width", modalities=("vector",))
def wrong_width(spec) -> nn.Module:
    """Ignores num_outputs: one output too many."""
    return nn.Sequential(nn.Flatten(), nn.LazyLinear(spec.num_outputs + 1))
'''


def test_check_plugin_fails_a_broken_model_and_names_the_check(tmp_path, capsys):
    from benchmarks.cli import main

    plugin = tmp_path / "broken.py"
    plugin.write_text(BROKEN_PLUGIN)
    try:
        rc = main(["check", "--plugin", str(plugin), "--dataset", "parity"])
    finally:
        registry.unregister("model", "wrong_width")
    out = capsys.readouterr().out
    assert rc == 1
    assert "FAIL" in out and "wrong_width" in out and "outputs have the right shape" in out
