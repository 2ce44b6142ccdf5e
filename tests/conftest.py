"""Test-wide settings: headless rendering, ROS 2 on loopback with a per-process domain id, and the
``gpu`` marker skipped where CUDA is missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
# Distinct per test process, so parallel runs on one machine never hear each other.
os.environ["ROS_DOMAIN_ID"] = str(1 + os.getpid() % 100)

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not any(item.get_closest_marker("gpu") for item in items):
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (run on the device machine)")
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shipped_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped ``fr3-reach`` model exported at the deployment budget (what ``make export`` writes),
    once per session; the environment variable ``WM_CONTROL_TEST_EXPORT`` names an existing export to
    use instead.
    """
    given = os.environ.get("WM_CONTROL_TEST_EXPORT")
    if given:
        return Path(given).resolve()
    out = tmp_path_factory.mktemp("export") / "fr3-reach"
    exe = Path(sys.executable).parent / "wm-control-export"
    cmd = [str(exe), "checkpoint=models/fr3-reach", f"out={out}", "deploy=fr3-reach"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return out
