"""The learned planner over ROS 2, end to end: the sim, controller and goal nodes as separate rclpy
processes on loopback (this test process's ``ROS_DOMAIN_ID``), the shipped ``fr3-reach`` model through
its onnxruntime export at the deployment budget, started by the project's launch runner. Every
process a test starts is stopped by the test (its whole process group), also when the test fails.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from rosproc import launched


# Not yet on every run (issue 13): with the posture fine-tuned model (2026-12-05/06) 27 of 28 runs passed
# at the 128 x 2 budget (13 alone or beside a busy process, 8 clean-clone make test, 6 through the launch
# runner alone); one clean-clone run reached 8 of 10 (goals 4 and 5 timed out 6.8 and 5.8 cm away), no
# reflex. At the 64 x 2 budget (2026-12-06 evening) 13 of 14 runs passed (two in clean-clone make tests). It runs in
# every make test; XPASS is the norm.
@pytest.mark.xfail(reason="issue 13: >= 9 of 10 goals in 40 of 42 runs, not yet every run", strict=False)
def test_the_arm_reaches_seeded_goals_through_three_ros_processes(shipped_export: Path, tmp_path: Path) -> None:
    export = shipped_export
    summary, log = tmp_path / "summary.json", tmp_path / "launch.log"
    with launched([f"export:={export}", "goals:=10", "seed:=0", f"summary:={summary}"], log) as proc:
        deadline = time.monotonic() + 240.0
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(1.0)
        assert proc.poll() == 0, log.read_text()[-3000:]
    result = json.loads(summary.read_text())
    text = log.read_text()
    assert "reflex:" not in text, text[-3000:]
    assert result["finished"] == 10
    assert result["reached"] >= 9, json.dumps(result, indent=1)
