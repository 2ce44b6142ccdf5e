"""Fused CPU kernels (LayerNorm + Mish / SimNorm, two-hot decoding), compiled on first use.

The planner and the update spend most of their non-matmul time in element-wise work; in eager
PyTorch each op is a separate pass over memory (and ``aten::mish`` alone costs about as much as the
matmul before it). ``fused.c`` does LayerNorm, the affine transform and the activation in one pass
per row. It is compiled once per machine with the system C compiler (``cc -O3 -march=native
-fopenmp`` and the vectorisation-relevant parts of fast-math) into a cache folder and loaded with
ctypes; OpenMP resolves to the libgomp torch already loaded, so there is one thread pool.

Nothing here is required: without a compiler, with ``WM_CONTROL_NATIVE=0``, for non-float32 or
non-CPU tensors, the callers use equivalent PyTorch code (``available()`` tells which path runs).
Environment: ``CC`` (compiler, default ``cc``), ``WM_CONTROL_CACHE`` (cache root, default
``~/.cache/wm_control``).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import torch

__all__ = ["available", "library", "set_enabled", "status", "tune_allocator"]

_log = logging.getLogger(__name__)
_SOURCE = Path(__file__).with_name("fused.c")
# The fast-math pieces that let reductions and reciprocals vectorise, but not -ffast-math itself:
# linking with it pulls in crtfastmath.o, which turns on flush-to-zero for the whole process at load
# time, and -ffinite-math-only would stop NaN from propagating (NaN must reach the safety checks).
_FLAGS = [
    "-O3",
    "-march=native",
    "-fno-math-errno",
    "-fno-trapping-math",
    "-fno-signed-zeros",
    "-fassociative-math",
    "-freciprocal-math",
    "-fopenmp",
    "-fPIC",
    "-shared",
    "-std=c99",
]
_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_status = "not loaded"
_tried = False


def _cache_dir() -> Path:
    root = Path(os.environ.get("WM_CONTROL_CACHE", Path.home() / ".cache" / "wm_control"))
    return root / "kernels"


def _compile(cc: str) -> Path:
    src = _SOURCE.read_bytes()
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, check=True).stdout.splitlines()[0]
    key = hashlib.sha256(src + " ".join(_FLAGS).encode() + version.encode()).hexdigest()[:16]
    out_dir = _cache_dir() / key
    target = out_dir / "libwmfused.so"
    if target.exists():
        return target
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=out_dir, suffix=".so", delete=False) as tmp:
        tmp_path = Path(tmp.name)
    try:
        subprocess.run(
            [cc, *_FLAGS, str(_SOURCE), "-o", str(tmp_path), "-lm"], capture_output=True, text=True, check=True
        )
        os.replace(tmp_path, target)  # atomic: concurrent processes never load a half-written file
    finally:
        tmp_path.unlink(missing_ok=True)
    return target


def _declare(lib: ctypes.CDLL) -> None:
    p, i64, i32, f32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int, ctypes.c_float
    lib.wm_ln_act_fwd.argtypes = [p, p, p, p, p, p, p, i64, i64, i64, i64, i32, i64, f32]
    lib.wm_ln_act_fwd.restype = None
    lib.wm_ln_act_bwd.argtypes = [p, p, p, p, p, p, p, p, p, p, p, p, i64, i64, i64, i64, i32, i64, p, i32]
    lib.wm_ln_act_bwd.restype = None
    lib.wm_exp.argtypes = [p, p, i64]
    lib.wm_exp.restype = None
    lib.wm_mish_fwd.argtypes = [p, p, i64]
    lib.wm_mish_fwd.restype = None
    lib.wm_two_hot_inv.argtypes = [p, p, p, i64, i64, i64, i64, i64, f32, f32]
    lib.wm_two_hot_inv.restype = None


def library() -> ctypes.CDLL | None:
    """The loaded kernel library, compiling it on first call; ``None`` if unavailable (see ``status``)."""
    global _lib, _status, _tried
    if _tried:
        return _lib
    with _lock:
        if _tried:
            return _lib
        _tried = True
        if os.environ.get("WM_CONTROL_NATIVE", "1") == "0":
            _status = "disabled by WM_CONTROL_NATIVE=0"
            return None
        cc = os.environ.get("CC", "cc")
        if shutil.which(cc) is None:
            _status = f"no C compiler ({cc!r} not found); using the PyTorch path"
            _log.warning("wm_control.native: %s", _status)
            return None
        torch.zeros(1)  # make sure torch's libgomp is loaded first, so ours resolves to it
        try:
            path = _compile(cc)
            lib = ctypes.CDLL(str(path))
            _declare(lib)
        except (OSError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, "stderr", "") or str(exc)
            _status = f"compiling fused.c failed ({detail.strip()[:300]}); using the PyTorch path"
            _log.warning("wm_control.native: %s", _status)
            return None
        _lib = lib
        _status = f"loaded {path}"
        return _lib


def set_enabled(enabled: bool) -> None:
    """Switch the kernels off (or back on) for this process, e.g. to compare against the PyTorch path."""
    global _lib, _status, _tried
    with _lock:
        if enabled:
            _tried, _lib = False, None
        else:
            _tried, _lib, _status = True, None, "disabled by set_enabled(False)"


def available() -> bool:
    """Whether the fused kernels are in use."""
    return library() is not None


def status() -> str:
    """Human-readable state of the native kernels (for logs and benchmark JSON)."""
    library()
    return _status


def tune_allocator() -> bool:
    """Keep freed memory in glibc's heap instead of returning it to the OS after every tensor.

    Eager PyTorch allocates and frees hundreds of ~1 MB tensors per planner solve; by default glibc
    serves those with mmap/munmap, and every fresh page is a page fault (measured: 3-4 % of planning
    time on a 2-core CPU). Raising the mmap and trim thresholds makes the memory reused. This is a
    process-wide setting, so only entry points (training, benchmarks, control nodes) call it.
    Returns False where glibc's ``mallopt`` is unavailable.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    ok = mallopt(m_mmap_threshold, 32 << 20) == 1
    ok = mallopt(m_trim_threshold, 256 << 20) == 1 and ok
    ok = mallopt(m_top_pad, 64 << 20) == 1 and ok
    return ok
