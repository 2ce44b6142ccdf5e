"""Shared helpers of the benchmark scripts: machine description, timing statistics, JSON output."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    """The short commit of the checkout, with ``-dirty`` when tracked Python or config files under it
    differ from that commit (the code that ran is then not the commit's).
    """
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "*.py", "*.yaml", "*.xml"],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip() + ("-dirty" if changed.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def machine_info(gpu: bool = False) -> dict[str, Any]:
    """What ran the benchmark: CPU, cores, OS, Python and library versions, git commit; with ``gpu``
    also the GPU model, compute capability, CUDA runtime of torch and the TensorRT version.
    """
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "mujoco": _version("mujoco"),
        "torch": _version("torch"),
        "onnxruntime": _version("onnxruntime") or _version("onnxruntime-gpu"),
        "git_commit": _git_commit(),
    }
    if gpu:
        import torch

        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_capability"] = ".".join(str(v) for v in torch.cuda.get_device_capability(0))
        info["cuda"] = torch.version.cuda
        info["tensorrt"] = _version("tensorrt") or _version("tensorrt-cu12") or _version("tensorrt-cu13")
    return info


def gemm_gflops(repeats: int = 9, device: str = "cpu") -> float:
    """Median fp32 1024x1024x1024 GEMM throughput [GFLOP/s] in torch with the current thread count
    (the same-process reference that efficiencies are measured against). On ``cuda`` TF32 is off, so
    the reference is true fp32, and each product is timed to completion.
    """
    import time

    import torch

    cuda = device.startswith("cuda")
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = False
    a, b = torch.randn(1024, 1024, device=device), torch.randn(1024, 1024, device=device)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(repeats if not cuda else 10 * repeats):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        a @ b
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return 2 * 1024**3 / float(np.median(times)) / 1e9


def stats_ms(samples_s: list[float] | np.ndarray) -> dict[str, float]:
    """Median / p99 / max / mean of wall times given in seconds, reported in milliseconds."""
    a = np.asarray(samples_s, dtype=np.float64) * 1e3
    return {
        "median_ms": float(np.median(a)),
        "p99_ms": float(np.percentile(a, 99)),
        "max_ms": float(a.max()),
        "mean_ms": float(a.mean()),
        "n": int(a.size),
    }


def write_result(name: str, payload: dict[str, Any]) -> Path:
    """Write ``docs/results/<name>`` (pretty JSON, via a temp file) and print the JSON to stdout."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    text = json.dumps(payload, indent=2, sort_keys=False) + "\n"
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    print(text, end="")
    return path
