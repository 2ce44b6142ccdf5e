"""The trained fr3-reach model the repository ships (``models/fr3-reach``, a model-only checkpoint):
it loads with today's code, its contract matches the task as ``sim.make("fr3-reach")`` builds it, and
it still reaches its targets in closed loop. A change to the observation, the action scaling or the
model code that would silently break the shipped model fails here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import sim
from apps.common import build_agent, env_factory
from export.contract import make_contract
from wm_control.evaluation import run_episode
from wm_control.training.checkpoint import load_checkpoint

MODEL = Path(__file__).resolve().parents[1] / "models" / "fr3-reach"


@pytest.fixture(scope="module")
def shipped() -> tuple:
    ckpt = load_checkpoint(MODEL)
    env = env_factory(ckpt.config["task"])(False)
    agent = build_agent(ckpt.config, env)
    agent.load_state(ckpt.tensors, ckpt.state["agent"])
    return ckpt, env, agent


def test_shipped_model_is_model_only_and_small(shipped: tuple) -> None:
    ckpt, _, _ = shipped
    assert ckpt.model_only and ckpt.config["task"]["name"] == "fr3-reach"
    assert not (MODEL / "buffer.npz").exists()
    assert sum(f.stat().st_size for f in MODEL.iterdir()) < 5_000_000


def test_shipped_model_matches_the_default_task(shipped: tuple) -> None:
    """The env the model was trained on is the one ``sim.make("fr3-reach")`` gives today."""
    ckpt, env, agent = shipped
    default = sim.make("fr3-reach")
    trained = make_contract(ckpt.config, env, agent.model, agent.planner, 0)
    today = make_contract(ckpt.config, default, agent.model, agent.planner, 0)
    assert trained.observation == today.observation
    assert trained.action == today.action
    assert trained.dt == today.dt and trained.joint_names == today.joint_names


@pytest.mark.slow
def test_shipped_model_reaches_its_targets(shipped: tuple) -> None:
    """Three of the evaluation episodes (seeds 0-2 of bench/fr3_reach_eval.py), planned in torch at the
    trained budget: measured 3 / 3 reached; the threshold leaves room for numerical drift.
    """
    _, env, agent = shipped
    first = [True]

    def policy(obs: np.ndarray) -> np.ndarray:
        a = agent.act(obs, t0=first[0], eval_mode=True)
        first[0] = False
        return a

    def reset() -> None:
        first[0] = True

    results = [run_episode(env, policy, seed=k, reset_policy=reset) for k in range(3)]
    assert sum(bool(r.success) for r in results) >= 2, [(r.success, r.reflex) for r in results]
    assert all(r.reflex is None for r in results)
