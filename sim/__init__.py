"""MuJoCo simulation of the Franka FR3: model, 1 kHz control layer, tasks and gymnasium envs.

Importing ``sim`` registers every task (``sim.list_tasks()``) and its gymnasium id
(e.g. ``gymnasium.make("wm_control/FR3Reach-v0")``).

Without a display, rendering defaults to headless EGL (``MUJOCO_GL=egl``) unless already set.
"""

import os

if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "egl"

from sim.tasks import load_all as _load_all  # noqa: E402
from sim.tasks.registry import get_task, list_tasks, make  # noqa: E402

_load_all()

__all__ = ["get_task", "list_tasks", "make"]
