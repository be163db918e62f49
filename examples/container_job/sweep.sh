#!/usr/bin/env bash
# Runs examples/container_job/sweep.toml as WORKERS containers (default 2) that share one sweep folder,
# /runs/sweep-mnist on the named volume xpnet-runs: its journal file is the study, so the containers work
# through the trials together, and any of them (or all) can be stopped or killed and started again with
# this script to continue. Container i gets GPU i. The image needs the sweep extra:
#   docker build -f docker/Dockerfile -t xpnet:cuda --build-arg EXTRAS=cuda,plot,sweep .
# On the CPU image (built with EXTRAS=plot,sweep):  IMAGE=xpnet:cpu GPUS= examples/container_job/sweep.sh
# The same works across machines with the folder on a volume they share (NFSv4), or with
# storage = "postgresql://..." in the sweep file and a folder of their own on each.
set -euo pipefail
job_dir="$(cd "$(dirname "$0")" && pwd)"
image=${IMAGE:-xpnet:cuda}
workers=${WORKERS:-2}
gpus=${GPUS-yes}
sweep_dir=/runs/sweep-mnist

names=()
for ((i = 0; i < workers; i++)); do
  names+=("xpnet-sweep-$i")
  docker run -d --rm --name "xpnet-sweep-$i" ${gpus:+--gpus "device=$i"} \
    -v xpnet-data:/data \
    -v xpnet-runs:/runs \
    -v "$job_dir:/job:ro" \
    "$image" sweep /job/sweep.toml --out "$sweep_dir" --quiet
done
docker wait "${names[@]}"
exec docker run --rm -v xpnet-runs:/runs "$image" sweep --summary "$sweep_dir"
