#!/bin/bash
# One large cell over 2 nodes x 4 GPUs with Lightning's multi-node DDP.
# Lightning reads SLURM's variables (SLURM_NTASKS, SLURM_PROCID, ...) itself: one task per
# GPU, started by srun; rank 0 writes the record. Submit with: sbatch benchmarks/slurm/ddp_cell.sh
#SBATCH --job-name=mlwm-ddp
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=8
#SBATCH --time=02:00:00

srun .venv/bin/mlwm run --dataset mnist --param root="$HOME/data/mnist" --model cnn2d \
    --hparam channels=256 \
    --accelerator gpu --devices 4 --num-nodes 2 --strategy ddp --seed 0
