"""The fused native kernels agree with the PyTorch reference path, forward and backward, and the
library falls back to PyTorch when the kernels cannot be built."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from wm_control import native
from wm_control.model.fused import linear_two_hot_inv, ln_act, ln_act_reference, mish, two_hot_inv_fast
from wm_control.model.ops import two_hot_inv

pytestmark = pytest.mark.skipif(not native.available(), reason=f"native kernels unavailable: {native.status()}")


def _grads(fn, *tensors):  # noqa: ANN001, ANN202
    leaves = [t.detach().clone().requires_grad_() if t is not None else None for t in tensors]
    out = fn(*leaves)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(5))
    (out * g).sum().backward()
    return out.detach(), [leaf.grad for leaf in leaves if leaf is not None]


@pytest.mark.parametrize("act", ["mish", "simnorm", "none"])
@pytest.mark.parametrize("with_pre_bias", [False, True])
def test_ln_act_matches_reference(act: str, with_pre_bias: bool) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 64, generator=g) * 3
    w, b = torch.randn(64, generator=g), torch.randn(64, generator=g)
    pb = torch.randn(64, generator=g) if with_pre_bias else None
    with torch.no_grad():
        torch.testing.assert_close(
            ln_act(x, w, b, act, pre_bias=pb), ln_act_reference(x, w, b, act, pre_bias=pb), atol=1e-5, rtol=1e-5
        )
    y1, g1 = _grads(lambda *a: ln_act(a[0], a[1], a[2], act, pre_bias=a[3] if with_pre_bias else None), x, w, b, pb)
    y2, g2 = _grads(
        lambda *a: ln_act_reference(a[0], a[1], a[2], act, pre_bias=a[3] if with_pre_bias else None), x, w, b, pb
    )
    torch.testing.assert_close(y1, y2, atol=1e-5, rtol=1e-5)
    for a, r in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, r, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("layout", ["head-major", "interleaved"])
def test_ln_act_stacked_heads(layout: str) -> None:
    g = torch.Generator().manual_seed(1)
    heads, rows, cols = 3, 40, 32
    w, b, pb = (torch.randn(heads, cols, generator=g) for _ in range(3))
    if layout == "head-major":
        x = torch.randn(heads, rows, cols, generator=g)
        ref = torch.stack([F.mish(F.layer_norm(x[k] + pb[k], (cols,)) * w[k] + b[k]) for k in range(heads)])
        out = ln_act(x, w, b, "mish", rows_per_affine=rows, pre_bias=pb)
    else:
        x = torch.randn(rows, heads, cols, generator=g)
        ref = torch.stack([F.mish(F.layer_norm(x[:, k] + pb[k], (cols,)) * w[k] + b[k]) for k in range(heads)], 1)
        out = ln_act(x, w, b, "mish", rows_per_affine=1, pre_bias=pb)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_mish_and_its_gradient() -> None:
    x = torch.linspace(-30, 30, 2001, requires_grad=True)
    y = mish(x)
    y.sum().backward()
    ref_x = x.detach().clone().requires_grad_()
    F.mish(ref_x).sum().backward()
    torch.testing.assert_close(y.detach(), F.mish(ref_x.detach()), atol=2e-6, rtol=1e-5)
    torch.testing.assert_close(x.grad, ref_x.grad, atol=2e-6, rtol=1e-5)


def test_fast_exp_accuracy() -> None:
    lib = native.library()
    x = torch.linspace(-80, 80, 200_001)
    y = torch.empty_like(x)
    lib.wm_exp(x.data_ptr(), y.data_ptr(), x.numel())
    ref = torch.exp(x.double())
    assert ((y.double() - ref) / ref).abs().max() < 1e-6


def test_two_hot_decoding_kernels() -> None:
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(500, 101, generator=g) * 3
    ref = two_hot_inv(logits.double(), -10, 10)
    assert ((two_hot_inv_fast(logits, -10, 10) - ref).abs() / (ref.abs() + 1)).max() < 1e-5
    h, wt, b = (
        torch.randn(2, 50, 16, generator=g),
        torch.randn(2, 16, 101, generator=g),
        torch.randn(2, 101, generator=g),
    )
    with torch.no_grad():
        out = linear_two_hot_inv(h, wt, b, -10, 10)
    ref = two_hot_inv((torch.matmul(h, wt) + b[:, None]).double(), -10, 10)
    assert out.shape == (2, 50)
    assert ((out - ref).abs() / (ref.abs() + 1)).max() < 1e-5


@pytest.mark.parametrize("env", [{"WM_CONTROL_NATIVE": "0"}, {"CC": "/nonexistent/cc"}])
def test_falls_back_to_pytorch(env: dict[str, str], tmp_path) -> None:  # noqa: ANN001
    code = (
        "import torch\n"
        "from wm_control import native\n"
        "from wm_control.model.fused import ln_act, ln_act_reference\n"
        "x = torch.randn(8, 16); w = torch.ones(16); b = torch.zeros(16)\n"
        "assert not native.available(), native.status()\n"
        "assert torch.allclose(ln_act(x, w, b, 'mish'), ln_act_reference(x, w, b, 'mish'))\n"
        "print(native.status())\n"
    )
    run_env = {**os.environ, **env, "WM_CONTROL_CACHE": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=run_env)
    assert out.returncode == 0, out.stderr
    assert "PyTorch path" in out.stdout or "disabled" in out.stdout


def test_nan_propagates_and_denormals_survive_loading() -> None:
    x = torch.randn(4, 64)
    x[1, 3] = float("nan")
    for act in ("mish", "simnorm", "none"):
        y = ln_act(x, torch.ones(64), torch.zeros(64), act)
        assert torch.isnan(y[1]).all() and torch.isfinite(y[[0, 2, 3]]).all(), act
    logits = torch.randn(3, 101)
    logits[1, 5] = float("nan")
    out = two_hot_inv_fast(logits, -10, 10)
    assert torch.isnan(out[1]) and torch.isfinite(out[[0, 2]]).all()
    # Loading the kernels must not switch the process to flush-to-zero (no crtfastmath).
    assert float(torch.tensor(1e-38) / 1e3) > 0.0
