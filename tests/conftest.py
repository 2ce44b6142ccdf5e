"""Test-wide settings: headless rendering, ROS 2 on loopback with a per-process domain id, and the
``gpu`` marker skipped where CUDA is missing."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
# Distinct per test process, so parallel runs on one machine never hear each other.
os.environ["ROS_DOMAIN_ID"] = str(1 + os.getpid() % 100)

import pytest  # noqa: E402


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
