"""The scripted resolved-rate controller solves fr3-reach: the task is solvable, and this is the
reference success rate and time-to-target for the learned controller."""

from __future__ import annotations

import numpy as np

import sim
from sim.scripted import ResolvedRateController
from wm_control.evaluation import run_episode, summarize


def test_scripted_controller_solves_reach() -> None:
    env = sim.make("fr3-reach")
    controller = ResolvedRateController(env.generator.velocity_scale)
    results = [run_episode(env, controller, seed=1000 + k) for k in range(50)]
    summary = summarize(results)
    assert summary.success_rate >= 0.95, summary
    assert summary.reflexes == 0
    assert 0.2 < summary.time_to_success_median < 2.5  # measured about 1.0 s
    # Doing nothing must not count as success: the test can fail.
    idle = summarize([run_episode(env, lambda o: np.zeros(7, dtype=np.float32), seed=1000 + k) for k in range(5)])
    assert idle.success_rate < 0.5
