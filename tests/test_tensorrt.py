"""The native TensorRT backend: engine cache keys and clear failures on CPU; parity on a GPU."""

from __future__ import annotations

import logging
import sys
import types
from pathlib import Path

import pytest
import torch

from export.onnx_export import export_onnx
from export.parity import FP32_TOLERANCE, compare_backends
from tests.test_runtime import PLANNER, _contract, _model
from wm_control.errors import ConfigError
from wm_control.model.world_model import WorldModel
from wm_control.runtime.load import load_backend
from wm_control.runtime.tensorrt_backend import TrtConfig, default_cache, engine_path, require_tensorrt
from wm_control.runtime.torch_backend import TorchBackend


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, WorldModel]:
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    out = tmp_path_factory.mktemp("trt_export")
    m = _model()
    export_onnx(m, _contract(m), PLANNER, out)
    return out, m


def test_engine_cache_is_keyed_by_gpu_tensorrt_version_onnx_and_options(tmp_path: Path) -> None:
    cfg = TrtConfig()
    sha = "ab" * 32
    base = engine_path(tmp_path, "NVIDIA H100 80GB HBM3", (9, 0), "10.13.0.35", "planner", sha, cfg)
    assert base.parent.parent.name == "nvidia-h100-80gb-hbm3-sm90" and base.parent.name == "trt-10.13.0.35"
    assert base.name == f"planner-{sha[:16]}-b64.engine"
    others = [
        engine_path(tmp_path, "NVIDIA H200", (9, 0), "10.13.0.35", "planner", sha, cfg),  # another GPU model
        engine_path(tmp_path, "NVIDIA H100 80GB HBM3", (8, 9), "10.13.0.35", "planner", sha, cfg),
        engine_path(tmp_path, "NVIDIA H100 80GB HBM3", (9, 0), "11.4.0.106", "planner", sha, cfg),  # upgrade
        engine_path(tmp_path, "NVIDIA H100 80GB HBM3", (9, 0), "10.13.0.35", "planner", "cd" * 32, cfg),  # re-export
        engine_path(tmp_path, "NVIDIA H100 80GB HBM3", (9, 0), "10.13.0.35", "policy", sha, cfg),
        engine_path(tmp_path, "NVIDIA H100 80GB HBM3", (9, 0), "10.13.0.35", "planner", sha, TrtConfig(tf32=True)),
        engine_path(tmp_path, "NVIDIA H100 80GB HBM3", (9, 0), "10.13.0.35", "planner", sha, TrtConfig(max_batch=8)),
    ]
    assert len({base, *others}) == 1 + len(others)
    assert engine_path(tmp_path, "NVIDIA H100 80GB HBM3", (9, 0), "10.13.0.35", "planner", sha, cfg) == base


def test_default_cache_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WM_CONTROL_TRT_CACHE", str(tmp_path))
    assert default_cache() == tmp_path
    monkeypatch.delenv("WM_CONTROL_TRT_CACHE")
    assert default_cache().parts[-2:] == ("wm_control", "tensorrt")


def test_trt_config_rejects_bad_values_by_name() -> None:
    with pytest.raises(ConfigError, match="TrtConfig.workspace_mib"):
        TrtConfig(workspace_mib=0)
    with pytest.raises(ConfigError, match="TrtConfig.max_batch"):
        TrtConfig(max_batch=0)


def test_missing_tensorrt_or_gpu_is_named(export: tuple[Path, WorldModel], monkeypatch: pytest.MonkeyPatch) -> None:
    out, _ = export
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(ConfigError, match=r"pip install wm-control\[tensorrt\]"):
        load_backend(out, "tensorrt")
    with pytest.raises(ConfigError, match="device='gpu0'"):
        load_backend(out, "tensorrt", device="gpu0")
    monkeypatch.setitem(sys.modules, "tensorrt", types.ModuleType("tensorrt"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="needs a CUDA GPU"):
        require_tensorrt()


@pytest.mark.gpu
def test_tensorrt_matches_torch_and_reuses_its_cached_engines(export: tuple[Path, WorldModel], tmp_path: Path) -> None:
    pytest.importorskip("tensorrt")
    from wm_control.runtime.tensorrt_backend import TrtBackend

    out, m = export
    contract = _contract(m)
    built: list[str] = []
    engines = TrtBackend(out, contract, TrtConfig(cache=str(tmp_path)), log=built.append)
    assert sum(line.startswith("building") for line in built) == 4
    result = compare_backends(TorchBackend(m, contract, PLANNER), engines, cases=3)
    worst, passed = result.verdict(FP32_TOLERANCE)
    assert passed, (worst, result.diffs)
    again: list[str] = []
    TrtBackend(out, contract, TrtConfig(cache=str(tmp_path)), log=again.append)
    assert not again  # every engine came from the cache
