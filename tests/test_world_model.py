"""World-model architecture: presets, shapes, the stacked Q-ensemble, fast inference paths, Polyak."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from wm_control.errors import ConfigError
from wm_control.model.config import PRESETS, ModelConfig, model_config
from wm_control.model.ops import two_hot_inv
from wm_control.model.world_model import WorldModel

# Parameter counts of the TD-MPC2 presets (paper: 1M, 5M, 19M, 48M, 317M), measured with a
# 23-dim observation and 7-dim action (fr3-reach).
EXPECTED_PARAMS_M = {"small": 0.34, "1M": 1.22, "5M": 4.96, "19M": 18.1, "48M": 47.2, "317M": 312.6}


@pytest.mark.parametrize("preset", list(PRESETS))
def test_preset_sizes(preset: str) -> None:
    with torch.device("meta"):
        model = WorldModel(model_config(preset, 23, 7))
    assert model.num_parameters() / 1e6 == pytest.approx(EXPECTED_PARAMS_M[preset], rel=0.01)


@pytest.mark.parametrize("preset", ["small", "1M", "5M"])
def test_shapes(preset: str) -> None:
    cfg = model_config(preset, 23, 7)
    m = WorldModel(cfg).eval()
    obs = torch.randn(4, 5, 23)
    z = m.encode(obs)
    a = torch.rand(4, 5, 7) * 2 - 1
    assert z.shape == (4, 5, cfg.latent_dim)
    assert torch.allclose(z.reshape(4, 5, -1, 8).sum(-1), torch.ones(4, 5, cfg.latent_dim // 8), atol=1e-5)
    assert m.next(z, a).shape == z.shape
    assert m.reward(z, a).shape == (4, 5)
    assert m.value(z, a).shape == (4, 5)
    assert m.policy(z, torch.randn(4, 5, 7)).shape == (4, 5, 7)
    assert m.q_logits(z, a).shape == (cfg.num_q, 4, 5, cfg.num_bins)
    assert m.reward_logits(z, a).shape == (4, 5, cfg.num_bins)


def test_output_heads_start_at_zero() -> None:
    m = WorldModel(model_config("small", 10, 2)).eval()
    z, a = m.encode(torch.randn(6, 10)), torch.zeros(6, 2)
    # zero logits: uniform over bins symmetric around 0 -> value 0 (up to float rounding)
    assert m.reward(z, a).abs().max() < 1e-6 and m.value(z, a).abs().max() < 1e-6


def _per_head_reference(m: WorldModel, x: torch.Tensor) -> torch.Tensor:
    q, outs = m.qs, []
    for k in range(q.num_q):
        h = F.mish(F.layer_norm(x @ q.w0[:, k] + q.b0[k], (q.hidden,)) * q.g0[k] + q.be0[k])
        h = F.mish(F.layer_norm(h @ q.w1[k] + q.b1[k], (q.hidden,)) * q.g1[k] + q.be1[k])
        outs.append(h @ q.w2[k] + q.b2[k])
    return torch.stack(outs)


def test_stacked_ensemble_equals_separate_heads() -> None:
    torch.manual_seed(0)
    m = WorldModel(model_config("small", 10, 3, num_q=5)).eval()
    with torch.no_grad():
        for p in m.qs.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(12, m.cfg.latent_dim + 3)
    ref = _per_head_reference(m, x)
    torch.testing.assert_close(m.qs(x), ref, atol=1e-4, rtol=1e-4)
    heads = torch.tensor([4, 1])
    torch.testing.assert_close(m.qs(x, heads), ref[heads], atol=1e-4, rtol=1e-4)
    with torch.no_grad():
        torch.testing.assert_close(m.qs(x), ref, atol=1e-4, rtol=1e-4)


def test_inference_path_equals_autograd_path() -> None:
    torch.manual_seed(1)
    m = WorldModel(model_config("small", 10, 3)).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    obs, a = torch.randn(9, 10), torch.rand(9, 3) * 2 - 1
    z = m.encode(obs)  # autograd path (grad enabled)
    r = two_hot_inv(m.reward_logits(z, a), m.cfg.vmin, m.cfg.vmax)
    v = two_hot_inv(m.q_logits(z, a), m.cfg.vmin, m.cfg.vmax).mean(0)
    with torch.no_grad():
        torch.testing.assert_close(m.encode(obs), z.detach(), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(m.reward(z, a), r.detach(), atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(m.value(z, a), v.detach(), atol=1e-4, rtol=1e-4)


def test_soft_update_is_polyak() -> None:
    m = WorldModel(model_config("small", 10, 3))
    with torch.no_grad():
        for p in m.qs.parameters():
            p.add_(1.0)
    before = [p.clone() for p in m.target_qs.parameters()]
    online = [p.clone() for p in m.qs.parameters()]
    m.soft_update_target(0.1)
    for t, b, o in zip(m.target_qs.parameters(), before, online, strict=True):
        torch.testing.assert_close(t, 0.9 * b + 0.1 * o)
    assert not any(p.requires_grad for p in m.target_qs.parameters())


def test_target_stays_in_eval_mode() -> None:
    m = WorldModel(model_config("small", 10, 3)).train()
    assert m.qs.training and not m.target_qs.training


def test_bad_configs() -> None:
    with pytest.raises(ConfigError, match="unknown model preset '2M'"):
        model_config("2M", 5, 1)
    with pytest.raises(ConfigError, match="multiple of model.simnorm_dim"):
        ModelConfig(obs_dim=5, action_dim=1, latent_dim=30)
    with pytest.raises(ConfigError, match=r"unknown model field\(s\) \['width'\]"):
        model_config("small", 5, 1, width=3)


def test_termination_head_only_on_episodic_models() -> None:
    m = WorldModel(model_config("small", 10, 3, episodic=True)).eval()
    z = m.encode(torch.randn(4, 5, 10))
    p = m.termination(z)
    assert m.episodic and p.shape == (4, 5) and torch.all((p > 0) & (p < 1))
    plain = WorldModel(model_config("small", 10, 3)).eval()
    assert not plain.episodic and plain.termination_head is None
    with pytest.raises(ConfigError, match="no termination head"):
        plain.termination(z)
    with pytest.raises(ConfigError, match="model.episodic"):
        model_config("small", 10, 3, episodic="yes")
