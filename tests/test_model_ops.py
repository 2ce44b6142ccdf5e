"""Maths of the world model: symlog, two-hot regression, soft cross-entropy, SimNorm, the policy head."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from wm_control.model.ops import (
    log_std_from_raw,
    simnorm,
    soft_ce,
    squashed_gaussian,
    symexp,
    symlog,
    two_hot,
    two_hot_inv,
)

BINS, VMIN, VMAX = 101, -10.0, 10.0


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-2e4, 2e4, allow_nan=False), min_size=1, max_size=64))
def test_two_hot_round_trip(values: list[float]) -> None:
    x = torch.tensor(values, dtype=torch.float64)
    code = two_hot(x, BINS, VMIN, VMAX)
    assert torch.allclose(code.sum(-1), torch.ones_like(x))
    assert (code >= 0).all() and ((code > 0).sum(-1) <= 2).all()
    decoded = two_hot_inv(torch.log(code.clamp_min(1e-300)), VMIN, VMAX)
    clipped = symexp(torch.clamp(symlog(x), VMIN, VMAX))  # the grid covers symlog in [-10, 10]
    assert torch.allclose(decoded, clipped, rtol=1e-9, atol=1e-9)


def test_symlog_symexp_are_inverse() -> None:
    x = torch.linspace(-1e3, 1e3, 1001, dtype=torch.float64)
    assert torch.allclose(symexp(symlog(x)), x, rtol=1e-12, atol=1e-9)


def test_soft_ce_matches_dense_formula() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 7, BINS, generator=g)
    target = torch.randn(4, 7, generator=g) * 50
    dense = -(two_hot(target, BINS, VMIN, VMAX) * F.log_softmax(logits, -1)).sum(-1)
    assert torch.allclose(soft_ce(logits, target, VMIN, VMAX), dense, atol=1e-5)
    # broadcasting of the target over leading (ensemble) dimensions
    ens = torch.randn(3, 4, 7, BINS, generator=g)
    assert torch.allclose(soft_ce(ens, target.unsqueeze(0), VMIN, VMAX)[1], soft_ce(ens[1], target, VMIN, VMAX))


def test_simnorm_groups_sum_to_one() -> None:
    x = torch.randn(5, 64) * 10
    y = simnorm(x, 8).reshape(5, 8, 8)
    assert torch.allclose(y.sum(-1), torch.ones(5, 8), atol=1e-6)
    assert (y > 0).all()


def test_log_std_range() -> None:
    raw = torch.linspace(-100, 100, 1001)
    ls = log_std_from_raw(raw, -10.0, 2.0)
    assert ls.min() >= -10.0 and ls.max() <= 2.0
    assert ls.min() < -9.99 and ls.max() > 1.99


def test_squashed_gaussian_log_prob_is_the_density_of_the_action() -> None:
    g = torch.Generator().manual_seed(1)
    mu, log_std, eps = (torch.randn(10, 3, generator=g) * 0.5 for _ in range(3))
    out = squashed_gaussian(mu, log_std, eps)
    base = torch.distributions.Normal(mu, log_std.exp())
    dist = torch.distributions.TransformedDistribution(base, [torch.distributions.TanhTransform()])
    expected = dist.log_prob(out.action).sum(-1, keepdim=True)
    assert torch.allclose(out.log_prob, expected, atol=1e-3)
    assert torch.allclose(out.mean, torch.tanh(mu))
    assert (out.action.abs() < 1).all()


@pytest.mark.parametrize("x", [0.0, 1.0, -3.5, 1234.5])
def test_two_hot_scalar_inputs(x: float) -> None:
    code = two_hot(torch.tensor(x), BINS, VMIN, VMAX)
    assert code.shape == (BINS,)
    assert math.isclose(float(code.sum()), 1.0, rel_tol=1e-6)
