"""The library stays free of ROS, hydra, simulators and GPU runtimes, and its public API resolves."""

from __future__ import annotations

import json
import subprocess
import sys

import wm_control

FORBIDDEN = ("rclpy", "hydra", "omegaconf", "onnxruntime", "tensorrt", "mujoco", "dm_control", "sim")


def test_import_wm_control_pulls_no_forbidden_modules() -> None:
    code = (
        "import json, sys, wm_control\n"
        "import wm_control.chunking, wm_control.kinematics, wm_control.evaluation, wm_control.video\n"
        f"print(json.dumps(sorted(m for m in {FORBIDDEN!r} if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_every_exported_name_resolves() -> None:
    assert wm_control.__all__, "empty public API"
    for name in wm_control.__all__:
        assert getattr(wm_control, name) is not None, name
