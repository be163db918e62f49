#!/usr/bin/env bash
# Runs examples/container_job/job.toml in the xpnet image: the dataset cache and the run folders live in
# named volumes that outlive the container. IMAGE defaults to the GPU image; for the CPU image use
#   IMAGE=xpnet:cpu GPUS= examples/container_job/run.sh --device cpu
# Extra arguments are passed to xpnet after --config, so they override the file.
set -euo pipefail
job_dir="$(cd "$(dirname "$0")" && pwd)"
image=${IMAGE:-xpnet:cuda}
gpus=${GPUS---gpus=all}

exec docker run --rm ${gpus:+"$gpus"} \
  -v xpnet-data:/data \
  -v xpnet-runs:/runs \
  -v "$job_dir:/job:ro" \
  "$image" --config /job/job.toml "$@"
