#!/usr/bin/env bash
# Data-parallel xpnet on a Slurm cluster: one rank per GPU, 2 nodes x 4 GPUs, 784-4096-4096-10 on MNIST.
#
#   sbatch examples/slurm_job.sh                 # a new run, or the continuation of this job's run
#   RUN=runs/mnist-wide sbatch examples/slurm_job.sh
#
# Slurm sends SIGTERM to every rank 120 s before the time limit (--signal): all ranks stop after the
# same step and rank 0 writes the checkpoint; submitting the script again (or --requeue) resumes it,
# bit-identical to an uninterrupted run. The run folder must be on a filesystem every node sees.
# mpi4py must be built for the cluster's MPI; use the --mpi plugin that MPI wants (pmix, pmi2).
#SBATCH --job-name=xpnet-dp
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=8
#SBATCH --time=02:00:00
#SBATCH --signal=TERM@120
#SBATCH --requeue
set -euo pipefail

RUN="${RUN:-runs/mnist-wide}"
if [ -f "$RUN/metrics.json" ]; then
    echo "xpnet: the run in $RUN is complete"
elif [ -f "$RUN/checkpoint.npz" ]; then
    srun --mpi=pmix python -m xpnet --resume "$RUN"
else
    srun --mpi=pmix python -m xpnet --distributed --device cuda --dataset mnist \
        --hidden 4096 4096 --batch-size 512 --epochs 20 --checkpoint-every 500 --out "$RUN"
fi
