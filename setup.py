"""ament_python entry: colcon (and ``ros2 launch``) need the resource marker, package.xml, launch files
and configs under ``share/wm_control``. Everything else lives in pyproject.toml.
"""

from pathlib import Path

from setuptools import setup

here = Path(__file__).parent


def _files(pattern: str) -> list[str]:
    return sorted(str(p.relative_to(here)) for p in here.glob(pattern) if p.is_file())


setup(
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/wm_control"]),
        ("share/wm_control", ["package.xml"]),
        ("share/wm_control/launch", _files("launch/*.xml")),
        *[(f"share/wm_control/{Path(f).parent}", [f]) for f in _files("configs/**/*.yaml")],
    ],
)
