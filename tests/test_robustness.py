"""The robustness catalogue (``bench/robustness.py``) in its quick form: every bad file, bad input and
backend fault it tries is refused with a clear one-line error or held safely; none is silently
accepted and none ends in a raw traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import robustness  # noqa: E402


@pytest.mark.slow
def test_quick_catalogue_refuses_or_holds_every_case(tmp_path: Path) -> None:
    payload = robustness.run_catalogue(quick=True, workdir=tmp_path)
    failures = [r for r in payload["results"] if r["outcome"] in ("silently_accepted", "raw_traceback")]
    report = "\n".join(f"{r['outcome']}: [{r['group']}] {r['name']}: {r['detail']}" for r in failures)
    assert payload["silently_accepted"] == 0, report
    assert payload["raw_tracebacks"] == 0, report
    assert payload["cases"] >= 40 and payload["cases"] == len(payload["results"])
    assert payload["refused_with_clear_error"] + payload["held_safely"] == payload["cases"]
    groups = {r["group"] for r in payload["results"]}
    assert {"exports", "loop inputs", "backend faults", "checkpoints", "chunk generator", "conformance"} <= groups
    assert payload["quick"] is True and "cli" not in groups
