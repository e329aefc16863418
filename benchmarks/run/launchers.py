"""Beyond one machine: a suite's cells as a SLURM job array through submitit.

    mlwm benchmark --suite default --launcher slurm --partition gpu --gpus-per-node 1

Each array task runs one cell with the same claim-and-record logic as a local run, so
resuming and the leaderboard work unchanged: resubmitting a suite runs only what has no
record. `--launcher local` uses submitit's local executor (the tests' path). For one
large cell over several nodes, Lightning's own multi-node DDP applies instead
(`mlwm run ... --num-nodes 2 --devices 4 --strategy ddp`; see benchmarks/slurm/ddp_cell.sh).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import UserError
from .execute import RunOptions
from .plan import Cell, SuitePlan


@dataclass(frozen=True)
class ClusterOptions:
    launcher: str = "slurm"          # slurm, or local (submitit's local executor)
    partition: str | None = None     # SLURM partition
    timeout_min: int = 60            # per array task
    gpus_per_node: int = 0
    cpus_per_task: int = 2
    mem_gb: int = 8
    array_parallelism: int = 64      # array tasks running at once
    folder: str = "results/slurm"    # submitit's logs and pickles
    wait: bool = True                # wait for the tasks, then build the leaderboard


def run_one_cell(cell: Cell, options: RunOptions,
                 plugin_files: tuple[str, ...]) -> dict[str, Any]:
    """What one array task runs: one cell, with claims. The cell itself travels in the
    task (pickled by submitit), so what the command line changed (--model, --batch-scale,
    --compile) reaches the task exactly as planned."""
    from .. import registry
    from .plan import make_datamodule
    from .serial import run_claimed

    registry.load_plugins(plugin_files)
    outcome, record = run_claimed(cell, make_datamodule(cell.dataset), options)
    return {"cell": cell.label, "outcome": outcome,
            "status": record.status if record else "busy",
            "reason": record.reason if record else None}


def submit_suite(plan: SuitePlan, options: RunOptions, cluster: ClusterOptions,
                 plugin_files: tuple[str, ...] = ()) -> list[Any]:
    """Submit every unfinished cell as one job array; return submitit's jobs."""
    try:
        import submitit
    except ImportError as exc:
        raise UserError("--launcher needs submitit: pip install 'mlwm-bench[cluster]'") from exc
    from .serial import finished_record

    suite = plan.suite
    # absolute paths: array tasks may start in another working directory
    options = replace(options, results_dir=Path(options.results_dir).resolve())
    pending = [cell for cell in plan.cells if finished_record(cell, options) is None]
    if not pending:
        return []
    folder = Path(cluster.folder) / suite.name
    if cluster.launcher == "local":
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=cluster.timeout_min)
    elif cluster.launcher == "slurm":
        if not cluster.partition:
            raise UserError("--launcher slurm needs --partition NAME")
        executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
        executor.update_parameters(
            slurm_partition=cluster.partition, timeout_min=cluster.timeout_min,
            gpus_per_node=cluster.gpus_per_node, cpus_per_task=cluster.cpus_per_task,
            mem_gb=cluster.mem_gb, slurm_array_parallelism=cluster.array_parallelism,
            name=f"mlwm-{suite.name}")
    else:
        raise UserError(f"unknown launcher {cluster.launcher!r}; choose slurm or local")
    plugins = tuple(str(Path(p).resolve()) for p in plugin_files)
    return executor.map_array(run_one_cell, pending, [options] * len(pending),
                              [plugins] * len(pending))
