#!/usr/bin/env bash
# The checks that need a CUDA GPU, in one go: the gpu-marked tests (torch on CUDA against the CPU
# reference, training on CUDA, TensorRT where it is installed) and the GPU planner-latency benchmark
# (docs/results/plan_latency_gpu.json). CI has no GPU and skips these tests.
#
#   scripts/gpu_check.sh                  # with the python on PATH (a CUDA build of torch)
#   PYTHON=.venv/bin/python scripts/gpu_check.sh
#   BACKENDS="torch" scripts/gpu_check.sh # only the backends this machine has (default: all three)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
export MUJOCO_GL=${MUJOCO_GL:-egl}
"$PYTHON" - <<'PY'
import sys
import torch
if not torch.cuda.is_available():
    sys.exit(f"gpu_check: torch {torch.__version__} sees no CUDA GPU (a CPU build, or no driver)")
print(f"gpu_check: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
PY
"$PYTHON" -m pytest -m gpu -p no:cacheprovider tests/test_gpu.py tests/test_tensorrt.py
# shellcheck disable=SC2086
"$PYTHON" bench/plan_latency.py --gpu --backends ${BACKENDS:-tensorrt onnxruntime torch}
