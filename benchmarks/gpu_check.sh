#!/usr/bin/env bash
# Every check that needs a CUDA GPU, in one command, for a short lease of a GPU machine that has CuPy,
# PyTorch, pytest and scikit-learn but no network (see "GPU checks in one command" in README.md here):
#
#   benchmarks/gpu_check.sh WHEELS_DIR MNIST_DIR OUT_DIR [EPOCHS]
#
# WHEELS_DIR holds wheels of what the machine lacks (array-api-compat), MNIST_DIR the four IDX files
# (raw or .gz). Writes into OUT_DIR: cuda-tests.log (every test marked cuda, in all of tests/),
# results_gpu.md and results_gpu_tf32.md (the GPU benchmark), gridsearch-cuda.log, and nvidia-smi.txt.
# Each step runs even when an earlier one failed; the exit code is the number of failed steps.
set -uo pipefail
wheels=${1:?"usage: $0 WHEELS_DIR MNIST_DIR OUT_DIR [EPOCHS]"}
mnist=${2:?"usage: $0 WHEELS_DIR MNIST_DIR OUT_DIR [EPOCHS]"}
out=${3:?"usage: $0 WHEELS_DIR MNIST_DIR OUT_DIR [EPOCHS]"}
epochs=${4:-10}
cd "$(dirname "$0")/.."
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/xpnet-site \
    "$wheels"/*.whl || exit 1
export PYTHONPATH="$PWD:/tmp/xpnet-site" PYTHONUNBUFFERED=1 SCIPY_ARRAY_API=1
failed=0
step() {  # step LOG COMMAND...: run COMMAND, its output to the screen and to OUT_DIR/LOG
    local log=$1
    shift
    echo "== $*"
    "$@" 2>&1 | tee "$out/$log" || failed=$((failed + 1))
}
nvidia-smi >"$out/nvidia-smi.txt" 2>&1
step cuda-tests.log python3 -m pytest -p no:cacheprovider -m cuda -ra tests
step benchmark.log python3 benchmarks/gpu_benchmark.py --data-dir "$mnist" --epochs "$epochs" \
    --results "$out/results_gpu.md"
step benchmark-tf32.log python3 benchmarks/gpu_benchmark.py --data-dir "$mnist" --epochs "$epochs" --tf32 \
    --results "$out/results_gpu_tf32.md"
step gridsearch-cuda.log python3 benchmarks/sklearn_gridsearch.py --device cuda --repeats 2
echo "== $failed step(s) failed"
exit "$failed"
