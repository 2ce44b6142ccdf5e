"""``fr3-reach``: bring the TCP to a random target in a reachable box and stop there."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sim.env import FR3Env, FR3EnvConfig
from sim.physics import FR3Sim
from sim.tasks.base import Reward
from sim.tasks.registry import register
from wm_control.chunking import CommandState
from wm_control.errors import ConfigError, check_range
from wm_control.kinematics import tcp_jacobian
from wm_control.observation import REACH_LAYOUT, reach_observation
from wm_control.robot import FR3

__all__ = ["REACH_ENV_DEFAULTS", "REACH_TRAINING_PLANNER", "ReachConfig", "ReachTask", "make_reach"]

# fr3-reach's control contract (the one place it is written; configs/task/fr3-reach.yaml overrides it
# only where a run sets it). A 20 ms control period (50 Hz). Action 1.0 commands 30 % of each joint's
# velocity limit: at the acceleration limit the command reaches any target within about 5 ticks, so
# one action visibly changes the next state; at 50 % it takes 8 and a learned Q-function hardly tells
# one tick's actions apart (measured: TD-MPC2 reached 0 % success in 13k steps at 50 %). The scripted
# controller still reaches its targets (1.2 s median).
# Chunks start 30 ms after their tick (env.playout_delay): the dead time of the deployed link, where the
# ROS sim node runs its 1 kHz layer that far behind the stamps to absorb DDS and planning jitter. A model
# trained without it reaches its goals over ROS and then drifts off (measured: 27 cm after 6 s at 30 ms).
# Every chunk pulls the joints towards the home pose inside the null space of the TCP position at
# 0.25 /s (ChunkConfig.posture_gain). Without it the 7-DOF arm's posture drifts over a sequence of goals
# until the wrist sits near its limits and the planner stalls 3-9 cm short (bench/ros_link.py, seeds
# 0-15: 125 of 160 goals; the same model with the pull added at deployment, 144 at 0.5 and 153 at 0.25;
# fine-tuned with it at 0.25, 158).
REACH_ENV_DEFAULTS: dict[str, Any] = {
    "dt": 0.02,
    "chunk": {"velocity_fraction": 0.3, "posture_gain": 0.25},
    "playout_delay": 0.03,
}

# fr3-reach's training planner budget: 128 samples x 3 iterations x horizon 3 (16 elites, 6 policy
# trajectories: TD-MPC2's 64 of 512 and 24 of 512, scaled). The shipped models/fr3-reach was trained
# with it (98 % success over 50 held-out episodes); TD-MPC2's 512 x 6 plans 8x the trajectories per env
# step, which a 2-core CPU cannot afford while training.
REACH_TRAINING_PLANNER: dict[str, Any] = {"num_samples": 128, "iterations": 3, "num_elites": 16, "num_pi_trajs": 6}


@dataclass(frozen=True)
class ReachConfig:
    """Episode sampling and reward weights of ``fr3-reach`` (all SI units, base frame).

    target_low / target_high: corners of the box targets are drawn from [m].
    initial_joint_noise: half-width of the uniform noise on the start pose [rad].
    chain_probability: chance that an episode starts where the previous one ended (at rest there, the
        arm untouched), as a deployed arm starts each goal where it reached the last one; otherwise
        (and after a reflex, or from a pose within 0.1 rad of a joint limit) from the noisy home
        pose. Only where episodes start changes, not the dynamics or the reward.
    success_radius: TCP-to-target distance that counts as reached [m].
    rest_speed: TCP speed below which the arm counts as at rest [m/s].
    reward = far_weight (1 - tanh(d / far_scale)) + near_weight (1 - tanh(d / near_scale))
             - speed_weight tanh(v_tcp / speed_scale) - reflex_penalty [on the tick a reflex fires];
    with the defaults it lies in [-10.2, 10]. The far term keeps a usable gradient across the whole
    workspace (4.6 at 0.3 m), the near term rewards the last centimetres. The scale (10 per step, as
    in Meta-World) matters for MPPI, whose temperature is not scale-invariant: with rewards of 1 per
    step the value differences between action sequences of one 20 ms tick are too small to rank.
    """

    target_low: tuple[float, float, float] = (0.30, -0.30, 0.15)
    target_high: tuple[float, float, float] = (0.65, 0.30, 0.55)
    initial_joint_noise: float = 0.1
    chain_probability: float = 0.0
    success_radius: float = 0.02
    rest_speed: float = 0.05
    far_weight: float = 7.0
    far_scale: float = 0.4
    near_weight: float = 3.0
    near_scale: float = 0.03
    speed_weight: float = 0.2
    speed_scale: float = 0.5
    reflex_penalty: float = 10.0

    def __post_init__(self) -> None:
        for name in ("target_low", "target_high"):
            v = getattr(self, name)
            if len(v) != 3:
                raise ConfigError(f"ReachConfig.{name} must have 3 values (x, y, z in m); got {v!r}")
        for i, (lo, hi) in enumerate(zip(self.target_low, self.target_high, strict=True)):
            if lo > hi:
                raise ConfigError(f"ReachConfig.target_low[{i}]={lo} exceeds target_high[{i}]={hi}")
            check_range(f"ReachConfig.target_high[{i}]", hi, -1.0, 1.0)
            check_range(f"ReachConfig.target_low[{i}]", lo, -1.0, 1.0)
        check_range("ReachConfig.initial_joint_noise", self.initial_joint_noise, 0.0, 0.5)
        check_range("ReachConfig.chain_probability", self.chain_probability, 0.0, 1.0)
        check_range("ReachConfig.success_radius", self.success_radius, 0.0, 0.5, low_inclusive=False)
        check_range("ReachConfig.rest_speed", self.rest_speed, 0.0, 2.0, low_inclusive=False)
        for name in ("far_weight", "near_weight", "speed_weight", "reflex_penalty"):
            check_range(f"ReachConfig.{name}", getattr(self, name), 0.0, 1000.0)
        for name in ("far_scale", "near_scale", "speed_scale"):
            check_range(f"ReachConfig.{name}", getattr(self, name), 0.0, 10.0, low_inclusive=False)


class ReachTask:
    """Reach a target point with the TCP (see ``ReachConfig``)."""

    layout = REACH_LAYOUT

    def __init__(self, config: ReachConfig = ReachConfig()) -> None:
        self.config = config
        self.target = np.zeros(3)
        self._low = np.asarray(config.target_low)
        self._high = np.asarray(config.target_high)

    def reset(self, physics: FR3Sim, rng: np.random.Generator) -> np.ndarray:  # noqa: D102
        previous = self.target
        self.target = rng.uniform(self._low, self._high)
        lim = FR3.limits
        if self.config.chain_probability > 0.0 and rng.random() < self.config.chain_probability:
            q = physics.q.copy()
            ended_well = physics.reflex is None and np.any(previous != 0.0)  # not the first episode, no reflex
            if ended_well and np.all(q >= lim.q_min + 0.1) and np.all(q <= lim.q_max - 0.1):
                return q
        assert FR3.start_q is not None
        noise = rng.uniform(-1.0, 1.0, size=7) * self.config.initial_joint_noise
        return np.clip(FR3.start_q + noise, lim.q_min + 0.1, lim.q_max - 0.1)

    def observation(self, physics: FR3Sim, q: np.ndarray, dq: np.ndarray, command: CommandState) -> np.ndarray:  # noqa: D102
        return reach_observation(FR3, q, dq, self.target, command.dq, command.ddq)

    def evaluate(self, physics: FR3Sim) -> Reward:  # noqa: D102
        c = self.config
        d = float(np.linalg.norm(self.target - physics.tcp_position))
        v = float(np.linalg.norm(tcp_jacobian(FR3, physics.q)[:3] @ physics.dq))
        terms = {
            "far": c.far_weight * (1.0 - np.tanh(d / c.far_scale)),
            "near": c.near_weight * (1.0 - np.tanh(d / c.near_scale)),
            "speed": -c.speed_weight * np.tanh(v / c.speed_scale),
        }
        if physics.reflex is not None:
            terms["reflex"] = -c.reflex_penalty
        terms = {k: float(x) for k, x in terms.items()}
        success = d <= c.success_radius and v <= c.rest_speed
        return Reward(sum(terms.values()), terms, success, {"distance": d, "tcp_speed": v})

    def goal_marker(self) -> np.ndarray | None:  # noqa: D102
        return self.target

    def goal_space(self) -> dict[str, Any]:
        """The goal a deployed model takes: a TCP position [m] in the base frame, inside the box the
        targets were drawn from in training (outside it the model's behaviour was never learned).
        """
        return {
            "name": "point",
            "size": 3,
            "unit": "m",
            "frame": "base",
            "low": [float(v) for v in self.config.target_low],
            "high": [float(v) for v in self.config.target_high],
        }


@register(
    "fr3-reach",
    gym_id="wm_control/FR3Reach-v0",
    tags=("fr3", "reach", "state"),
    description="FR3 + Franka Hand: move the TCP within 2 cm of a random target and stop",
    episodic=True,  # a reflex (collision, limit) ends an episode early
    planner=REACH_TRAINING_PLANNER,
)
def make_reach(
    env: FR3EnvConfig | dict[str, Any] | None = None,
    task: ReachConfig | dict[str, Any] | None = None,
    render_mode: str | None = None,
) -> FR3Env:
    """Build the ``fr3-reach`` env; configs may be dataclasses or plain dicts of their fields.

    A dict ``env`` is laid over ``REACH_ENV_DEFAULTS`` (nested keys merge); an ``FR3EnvConfig`` is
    used as it is.
    """
    env_cfg = env if isinstance(env, FR3EnvConfig) else FR3EnvConfig.from_any(_merged(REACH_ENV_DEFAULTS, env or {}))
    task_cfg = task if isinstance(task, ReachConfig) else ReachConfig(**_tuples(task or {}))
    return FR3Env(ReachTask(task_cfg), env_cfg, render_mode=render_mode)


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _tuples(d: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
