"""The README and ``docs/`` point only at what a clone has: every relative link resolves, and every path
they name inside the repository's own folders exists (a glob matches at least one file)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Folders of the repository: a backticked path that starts with one of them must exist.
TRACKED = ("apps", "bench", "configs", "docs", "export", "launch", "models", "requirements", "resource", "ros_nodes")
TRACKED += ("scripts", "sim", "tests", "wm_control")
# Named by the docs as what a command writes where it can run, and not produced on this machine.
NOT_YET_WRITTEN = {"docs/results/plan_latency_gpu.json": "bench/plan_latency.py --gpu needs a CUDA GPU"}


def _links(text: str) -> list[str]:
    """Relative markdown link targets (no scheme, no pure anchors), without their anchors."""
    targets = (m.group(1).split("#")[0] for m in re.finditer(r"\]\(([^)\s]+)\)", text))
    return [t for t in targets if t and not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def _paths(text: str) -> list[str]:
    """Backticked paths that start with one of the repository's folders (not gymnasium ids such as
    ``wm_control/FR3Reach-v0``)."""
    tokens = (m.group(1) for m in re.finditer(r"`([\w.\-*/]+)`", text))
    return [t for t in tokens if "/" in t and t.split("/")[0] in TRACKED and not re.search(r"-v\d+$", t)]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_links_and_paths_in_the_docs_exist(doc: Path) -> None:
    text = doc.read_text()
    missing = [t for t in _links(text) if not (doc.parent / t).exists()]
    missing += [p for p in _paths(text) if p not in NOT_YET_WRITTEN and not list(ROOT.glob(p))]
    assert not missing, f"{doc.name} names what the repository does not have: {missing}"
    assert "../shared" not in text, f"{doc.name} points outside the repository"


def test_the_checker_sees_links_and_paths() -> None:
    text = "see [the design](docs/architecture.md#layers), [site](https://x.org), `sim/tracking.py`, `a/b`, "
    text += "`/topic`, `wm_control/FR3Reach-v0`"
    assert _links(text) == ["docs/architecture.md"]
    assert _paths(text) == ["sim/tracking.py"]
