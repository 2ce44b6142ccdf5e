#!/usr/bin/env bash
# Create (or bring up to date) the development virtual environment with pinned versions.
#   scripts/setup_venv.sh [VENV_DIR]          (default .venv)
# Environment: PYTHON (interpreter to create the venv with, default python3),
#              TORCH_SPEC (default torch==2.13.0: the CPU wheel on our dev/CI machines; a GPU user
#              sets e.g. TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128").
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv}
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null; then
  echo "setup: $PYTHON is missing or older than Python 3.10; set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV with $("$PYTHON" --version)"
  "$PYTHON" -m venv "$VENV"
fi
# Some machines' pip configuration names index folders that do not exist; drop that noise only.
pip_install() {
  local status
  set +e
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$@" 2>&1 |
    grep -v "^WARNING: Location '.*' is ignored: it is neither a file nor a directory."
  status=${PIPESTATUS[0]}
  set -e
  return "$status"
}
# torch first and on its own, so the package's loose 'torch>=2.4' never pulls a multi-GB CUDA build.
if ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
  echo "setup: installing $TORCH_SPEC"
  # shellcheck disable=SC2086
  pip_install $TORCH_SPEC
fi
echo "setup: installing wm-control (editable) with the ros and dev extras, pinned by requirements/constraints.txt"
pip_install -c requirements/constraints.txt -e ".[ros,dev]"
"$VENV/bin/python" - <<'PY'
import importlib, sys
missing = [m for m in ("torch", "mujoco", "dm_control", "gymnasium", "rclpy", "onnxruntime", "wm_control", "sim")
           if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"setup: these modules did not install: {missing}")
PY
touch "$VENV/.wm-control-stamp"
echo "setup: $VENV is ready"
