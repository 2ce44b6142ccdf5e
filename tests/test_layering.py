"""The library stays free of ROS, hydra, simulators and GPU runtimes; the deployment runtime loads
without torch; and the public API resolves.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import wm_control

# Never loaded by importing any wm_control module: the runtimes are imported inside the functions
# that need them (onnxruntime when a backend is created, TensorRT by name at call time).
FORBIDDEN = ("rclpy", "hydra", "omegaconf", "onnxruntime", "tensorrt", "mujoco", "dm_control", "sim")
# The deployment runtime, on a robot PC with numpy and onnxruntime only: everything but the torch backend.
TORCH_BACKEND = "wm_control.runtime.torch_backend"


def _modules(package: str) -> list[str]:
    """``package`` and every module under it (the listing imports subpackages' ``__init__`` here,
    not in the subprocess that checks what gets loaded).
    """
    path = [str(Path(wm_control.__file__).parent.joinpath(*package.split(".")[1:]))]
    return [package] + [m.name for m in pkgutil.walk_packages(path, prefix=f"{package}.")]


def _loaded_after_import(modules: list[str], watch: tuple[str, ...]) -> list[str]:
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(json.dumps(sorted(m for m in {watch!r} if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_every_module_lists_its_submodules() -> None:
    everything = _modules("wm_control")
    for expected in ("wm_control.training.trainer", "wm_control.planning.solve", "wm_control.model.world_model"):
        assert expected in everything


def test_importing_every_wm_control_module_pulls_no_forbidden_modules() -> None:
    assert _loaded_after_import(_modules("wm_control"), FORBIDDEN) == []


def test_the_runtime_loads_without_torch() -> None:
    runtime = [m for m in _modules("wm_control.runtime") if m != TORCH_BACKEND]
    assert len(runtime) > 5
    assert _loaded_after_import(["wm_control", *runtime], ("torch",)) == []


def test_every_package_folder_is_a_package() -> None:
    root = Path(wm_control.__file__).parent
    folders = [p for p in root.rglob("*") if p.is_dir() and p.name != "__pycache__" and any(p.glob("*.py"))]
    assert folders and all((f / "__init__.py").exists() for f in folders), folders


def test_every_exported_name_resolves() -> None:
    assert wm_control.__all__, "empty public API"
    for name in ("TDMPC2", "plan", "MppiConfig", "ControlLoop", "load_backend", "ModelContract", "ControlContract"):
        assert name in wm_control.__all__, name
    for name in wm_control.__all__:
        assert getattr(wm_control, name) is not None, name
