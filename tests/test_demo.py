"""Smoke test of the demo entry point (the console script make demo runs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_demo_runs_and_writes_a_video(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "apps.demo", "--episodes", "1", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "scripted resolved-rate IK" in out.stdout
    assert "success 100%" in out.stdout
    video = tmp_path / "fr3_reach_scripted.mp4"
    assert video.stat().st_size > 10_000


def test_demo_rejects_bad_arguments() -> None:
    out = subprocess.run([sys.executable, "-m", "apps.demo", "--episodes", "0"], capture_output=True, text=True)
    assert out.returncode == 2 and "--episodes=0 must be >= 1" in out.stderr
