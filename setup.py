"""ament_python entry: colcon (and ``ros2 launch``) need the resource marker, package.xml, launch files
and configs under ``share/wm_control``. Everything else lives in pyproject.toml.
"""

from pathlib import Path

from setuptools import setup
from setuptools.dist import Distribution

here = Path(__file__).parent


class _Distribution(Distribution):
    """Keeps ``python_requires`` (pyproject's ``requires-python``) a string: colcon reads a package's
    set-up data by printing it with ``repr`` and parsing it back with ``ast.literal_eval``, which fails
    on the ``SpecifierSet`` object recent setuptools makes of it (colcon/colcon-core#584).
    """

    def parse_config_files(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201, D102
        super().parse_config_files(*args, **kwargs)
        if self.python_requires is not None:
            self.python_requires = self.metadata.python_requires = str(self.python_requires)


def _files(pattern: str) -> list[str]:
    return sorted(str(p.relative_to(here)) for p in here.glob(pattern) if p.is_file())


setup(
    distclass=_Distribution,
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/wm_control"]),
        ("share/wm_control", ["package.xml"]),
        ("share/wm_control/launch", _files("launch/*.xml")),
        *[(f"share/wm_control/{Path(f).parent}", [f]) for f in _files("configs/**/*.yaml")],
    ],
)
