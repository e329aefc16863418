"""Seconds per epoch of the expensive families (cnn2d, gru, lstm, transformer; cnn1d beside
them) on default-suite cells, before and after their fast paths, measured in one run.

    python -m benchmarks.perf.families [--before 659f97e] [--pairs semigroups-m4:cnn2d,...]
                                       [--repeats 3] [--threads 1]

"Before" is the model file as it was at git revision --before (the commit before the fast
paths: after they are committed, HEAD holds them), loaded from `git show` into a
temporary module; "after" is the registered model. Both get the same weights (one state
dict, the parameters are the same) and train on the same batches: an epoch is one
shuffled pass over the training split at the cell's batch size with AdamW, then one
pass over the validation split, as a cell does without the Trainer around it. Sides are
interleaved and the median of the repeats reported. "max |out diff|" compares the two
sides' validation outputs at the same weights (the fast paths are the same function up
to float rounding).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
import types
from pathlib import Path

import torch

from benchmarks import registry
from benchmarks.perf.common import cells_for
from benchmarks.run.execute import prepare
from benchmarks.run.plan import make_datamodule
from benchmarks.run.suite import load_suite
from benchmarks.train.evaluation import shape_outputs, training_loss
from benchmarks.train.module import call_backbone

PAIRS = ("semigroups-m4:cnn2d@30k,descents-left-matrix:cnn2d@30k,graph-planar:cnn2d@30k,"
         "semigroups-m4:cnn2d@10k,mnist1d:cnn1d@30k,mnist1d:gru@30k,"
         "parity-ood:gru@30k,dyck-24-ood40:gru@30k,parity-ood:gru@10k,parity-ood:lstm@30k,"
         "descents-right-oneline:transformer@30k,parity-ood:transformer@30k,"
         "dyck-24-ood40:transformer@30k,deepsets-sum-ood100:transformer@30k,"
         "parity-ood:transformer@10k")
FILES = {"cnn1d": "cnn", "cnn2d": "cnn", "gru": "rnn", "lstm": "rnn", "transformer": "transformer"}
REPO = Path(__file__).resolve().parents[2]


def old_module(file: str, rev: str) -> types.ModuleType:
    """models/<file>.py at `rev` as a module whose @register_model registers nothing (the
    names are the live plugins')."""
    source = subprocess.run(["git", "show", f"{rev}:models/{file}.py"], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout
    line = "from benchmarks.registry import register_model"
    if line not in source:
        raise SystemExit(f"models/{file}.py at {rev} does not import register_model as expected")
    module = types.ModuleType(f"before_{file}")
    module.register_model = lambda *a, **k: (lambda factory: factory)
    exec(compile(source.replace(line, ""), f"{rev}:models/{file}.py", "exec"), module.__dict__)
    return module


def epoch_seconds(net: torch.nn.Module, dm, spec) -> float:
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    t0 = time.perf_counter()
    net.train()
    for inputs, target in dm.loader("train", shuffle=True):
        loss = training_loss(call_backbone(net, inputs), target, spec)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        for inputs, _ in dm.loader("val"):
            call_backbone(net, inputs)
    return time.perf_counter() - t0


def measure(pair: str, suite, rev: str, repeats: int) -> dict[str, float]:
    cell = cells_for(pair, suite, [0])[0]
    dm = make_datamodule(cell.dataset)
    prepare(cell, dm)
    dm.configure(chunk=1)  # one (inputs, target) minibatch per item
    spec = dm.spec.for_view(cell.view)
    torch.manual_seed(0)
    after = registry.create_model(cell.model.name, spec, **cell.hparams)
    factory = getattr(old_module(FILES[cell.model.name], rev), cell.model.name)
    before = factory(spec, **cell.hparams)
    start = {k: v.clone() for k, v in after.state_dict().items()}
    inputs, _ = next(iter(dm.loader("val")))
    before.load_state_dict(start)
    with torch.no_grad():
        diff = (shape_outputs(call_backbone(before.eval(), inputs), spec)
                - shape_outputs(call_backbone(after.eval(), inputs), spec)).abs().max()
    sides = {"before": before, "after": after}
    runs: dict[str, list[float]] = {k: [] for k in sides}
    for rep in range(repeats + 1):  # the first round warms caches and is dropped
        for name in (list(sides) if rep % 2 == 0 else list(sides)[::-1]):
            sides[name].load_state_dict(start)  # both sides train from the same weights
            seconds = epoch_seconds(sides[name], dm, spec)
            if rep:
                runs[name].append(seconds)
    b, a = statistics.median(runs["before"]), statistics.median(runs["after"])
    return {"before": b, "after": a, "speedup": b / a, "diff": float(diff),
            "steps": len(dm.loader("train", shuffle=True))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default="659f97e", help="git revision of the old models")
    parser.add_argument("--pairs", default=PAIRS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    suite = load_suite("reference")
    print(f"| dataset · model | steps/epoch | before s/epoch | after s/epoch | speedup | "
          f"max \\|out diff\\| | (before = {args.before}, median of {args.repeats}, "
          f"threads {torch.get_num_threads()}) |")
    print("|---|---|---|---|---|---|---|")
    for pair in args.pairs.split(","):
        r = measure(pair, suite, args.before, args.repeats)
        print(f"| {pair.replace(':', ' · ')} | {r['steps']} | {r['before']:.3f} | "
              f"{r['after']:.3f} | {r['speedup']:.2f}x | {r['diff']:.1g} | |", flush=True)


if __name__ == "__main__":
    main()
