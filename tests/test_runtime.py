"""Export to ONNX and the runtime backends: parity with torch, the contract, and clear failures."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from export.onnx_export import GRAPHS, export_onnx
from export.parity import FP32_TOLERANCE, ParityResult, compare_backends, decode_resolution
from tests.fakes import ShiftedPlans, model_contract
from wm_control.contract import ModelContract
from wm_control.errors import ConfigError, ExportError, ModelContractError
from wm_control.model.config import model_config
from wm_control.model.weights import weights_sha256
from wm_control.model.world_model import WorldModel
from wm_control.observation import REACH_LAYOUT
from wm_control.planning.config import MppiConfig
from wm_control.planning.solve import draw_noise
from wm_control.robot import FR3
from wm_control.runtime.load import load_backend
from wm_control.runtime.manifest import embedded_contract
from wm_control.runtime.noise import check_noise, draw_noise_np

PLANNER = MppiConfig(horizon=3, iterations=3, num_samples=64, num_elites=8, num_pi_trajs=4, discount=0.97)


def _model(episodic: bool = True) -> WorldModel:
    """A small model with every weight randomised (zero-initialised heads would make all values tie);
    episodic (with a termination head) as fr3-reach models are.
    """
    torch.manual_seed(3)
    cfg = model_config("small", REACH_LAYOUT.size, 7, enc_dim=48, mlp_dim=64, latent_dim=32, episodic=episodic)
    m = WorldModel(cfg).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return m


def _contract(m: WorldModel, **changes: object) -> ModelContract:
    return model_contract(planner=PLANNER, model=dataclasses.asdict(m.cfg), weights_sha256=weights_sha256(m), **changes)


@pytest.fixture(scope="module", params=[True, False], ids=["episodic", "continuing"])
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, WorldModel]:
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    out = tmp_path_factory.mktemp("export")
    m = _model(episodic=request.param)
    export_onnx(m, _contract(m), PLANNER, out)
    return out, m


def test_files_are_valid_onnx_with_the_contract(exported: tuple[Path, WorldModel]) -> None:
    out, m = exported
    stored = json.loads((out / "model.json").read_text())
    files = stored.pop("files")
    assert sorted(files) == sorted([f"{g}.onnx" for g in GRAPHS] + ["weights.safetensors"])
    for name, digest in files.items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest, name
        assert (out / name).stat().st_mode & 0o777 == (out / "model.json").stat().st_mode & 0o777, name
    for graph in GRAPHS:
        proto = onnx.load(str(out / f"{graph}.onnx"))
        onnx.checker.check_model(proto, full_check=True)
        assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
        contract = embedded_contract(out / f"{graph}.onnx")
        assert contract == stored
        assert contract["weights_sha256"] == weights_sha256(m) and contract["planner"]["num_samples"] == 64


class _Tied(ShiftedPlans):
    """``inner`` whose every solve reports an elite tie."""

    def elite_margins(self, *args: object) -> np.ndarray:
        return np.zeros(PLANNER.iterations)


def test_parity_tolerances_follow_the_value_resolution() -> None:
    # one symlog-space rounding step moves a value of 150 by ~1e-4, of 0 by ~1e-7
    assert 5e-4 < decode_resolution(150.0) < 1e-3 and decode_resolution(0.0) < 1e-5
    res = ParityResult(PLANNER, cases=2, value_scale=150.0)
    weighted, plain = res.tolerance_for("planner.action[eval]", 1e-4), res.tolerance_for("policy.action", 1e-4)
    assert plain == 1e-4 and 3 * plain < weighted < 6 * plain
    assert res.tolerance_for("planner_step.mean", 1e-4) == weighted
    res.diffs = {"policy.action": 5e-5, "planner.action[eval]": 0.5 * weighted, "planner.action[eval][tie]": 0.5}
    assert res.verdict(1e-4) == (pytest.approx(0.5), True)  # the tie case does not decide
    res.diffs["policy.action"] = 2e-4
    assert res.verdict(1e-4)[1] is False
    res.diffs["policy.action"], res.tie_cases = 0.0, 2
    assert res.verdict(1e-4)[1] is False  # every solve a tie: nothing was really compared


def test_parity_catches_a_wrong_action_and_sets_ties_aside(exported: tuple[Path, WorldModel]) -> None:
    out, _ = exported
    torch_backend = load_backend(out, "torch")
    wrong = compare_backends(torch_backend, ShiftedPlans(torch_backend, 0.05), cases=2)
    assert wrong.tie_cases == 0 and not wrong.verdict(FP32_TOLERANCE)[1]
    assert wrong.diffs["planner.action[eval]"] == pytest.approx(0.05, rel=1e-3)
    tied = compare_backends(_Tied(torch_backend, 0.0), ShiftedPlans(torch_backend, 0.05), cases=2)
    assert tied.tie_cases == 2 and "planner.action[eval][tie]" in tied.diffs
    assert "planner.action[eval]" not in tied.diffs and not tied.verdict(FP32_TOLERANCE)[1]


def test_onnxruntime_matches_torch_within_1e4(exported: tuple[Path, WorldModel]) -> None:
    out, _ = exported
    ort_backend = load_backend(out, "onnxruntime", threads=1)
    torch_backend = load_backend(out, "torch")
    result = compare_backends(torch_backend, ort_backend, cases=3, seed=1)
    diffs = result.diffs
    assert set(diffs) >= {"policy.action", "planner.action[eval]", "planner.action[explore]", "planner_step.mean"}
    assert result.tie_cases == 0  # random weights: clear elite margins, so every output is compared
    assert max(diffs.values()) <= FP32_TOLERANCE, diffs  # small values: the base tolerance holds everywhere
    assert result.verdict(FP32_TOLERANCE)[1]
    # the comparison is not vacuous: a different warm start changes the plan by far more than that
    rng = np.random.default_rng(0)
    obs = rng.standard_normal(REACH_LAYOUT.size).astype(np.float32)
    noise = draw_noise_np(PLANNER, 7, torch_backend.num_q, rng)
    a = ort_backend.plan(obs, np.zeros((3, 7), np.float32), noise, 0.0)
    b = ort_backend.plan(obs, np.full((3, 7), 0.8, np.float32), noise, 0.0)
    assert np.abs(a.mean - b.mean).max() > 100 * FP32_TOLERANCE


def test_policy_graph_takes_any_batch(exported: tuple[Path, WorldModel]) -> None:
    import onnxruntime as ort

    out, m = exported
    sess = ort.InferenceSession(str(out / "policy.onnx"), providers=["CPUExecutionProvider"])
    obs = np.random.default_rng(2).standard_normal((5, REACH_LAYOUT.size)).astype(np.float32)
    (actions,) = sess.run(None, {"obs": obs})
    with torch.no_grad():
        ref = m.policy(m.encode(torch.from_numpy(obs)), torch.zeros(5, 7)).numpy()
    assert actions.shape == (5, 7) and np.abs(actions - ref).max() <= FP32_TOLERANCE


def test_iterating_the_step_graph_reproduces_the_full_solve(exported: tuple[Path, WorldModel]) -> None:
    out, _ = exported
    backend = load_backend(out, "onnxruntime", threads=1)
    rng = np.random.default_rng(5)
    obs = rng.standard_normal(REACH_LAYOUT.size).astype(np.float32)
    mean0 = np.clip(rng.standard_normal((3, 7)), -1, 1).astype(np.float32)
    noise = draw_noise_np(PLANNER, 7, backend.num_q, rng)
    full = backend.plan(obs, mean0, noise, 1.0)
    z, prior = backend.plan_init(obs, noise.pi_eps)
    mean, std = mean0, np.full((3, 7), PLANNER.max_std, np.float32)
    for i in range(PLANNER.iterations):
        step = backend.plan_step(z, prior, mean, std, noise.step(i), 1.0)
        mean, std = step.mean, step.std
    assert np.abs(step.action - full.action).max() <= FP32_TOLERANCE
    shifted = np.concatenate([mean[1:], np.zeros((1, 7), np.float32)])
    assert np.abs(shifted - full.mean).max() <= FP32_TOLERANCE


def test_numpy_and_torch_noise_have_the_same_shapes() -> None:
    t = draw_noise(PLANNER, 7, 5, torch.Generator().manual_seed(0))
    n = draw_noise_np(PLANNER, 7, 5, np.random.default_rng(0))
    for name in t._fields:
        assert tuple(getattr(t, name).shape) == getattr(n, name).shape, name
    check_noise(n, PLANNER, 7, 5)
    bad = n._replace(q_heads=np.full_like(n.q_heads, 7))
    with pytest.raises(Exception, match=r"noise.q_heads must lie in \[0, 4\]"):
        check_noise(bad, PLANNER, 7, 5)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"robot": "panda"}, "'robot'"),
        ({"dt": 0.01}, "'dt'"),
        ({"joint_names": ("a",) * 7}, "'joint_names'"),
        ({"observation": {**REACH_LAYOUT.to_dict(), "size": 39}}, "'observation.size' is 40"),
        ({"observation": {**REACH_LAYOUT.to_dict(), "name": "fr3-reach-v2"}}, "'observation.name'"),
        ({"velocity_scale": [9.0] * 7}, "'action.velocity_scale[0]'"),
        ({"chunk": {}}, "'action.chunk.acceleration_fraction' is 0.8; the controller shapes chunks with '<missing>'"),
    ],
)
def test_contract_check_names_the_field(kwargs: dict[str, object], field: str) -> None:
    c = _contract(_model())
    c.check(
        robot="fr3", dt=0.02, joint_names=FR3.joint_names, observation=REACH_LAYOUT.to_dict(),
        velocity_scale=c.action["velocity_scale"], chunk=c.action["chunk"],
    )  # fmt: skip
    with pytest.raises(ModelContractError, match=re.escape(field)):
        c.check(**kwargs)  # type: ignore[arg-type]


def test_contract_round_trip_and_version_check() -> None:
    c = _contract(_model())
    assert ModelContract.from_metadata(c.to_metadata()) == c
    with pytest.raises(ModelContractError, match="format_version 99"):
        ModelContract.from_dict({**c.to_dict(), "format_version": 99})
    with pytest.raises(ModelContractError, match="lacks contract field"):
        ModelContract.from_dict({k: v for k, v in c.to_dict().items() if k != "dt"})
    with pytest.raises(ModelContractError, match="no wm_control metadata"):
        ModelContract.from_metadata({"producer": "x"})


def _largest_initializer_offset(path: Path) -> int:
    """Byte offset of the middle of the largest weight tensor stored in an ONNX file."""
    proto = onnx.load(str(path))
    raw = max((t.raw_data for t in proto.graph.initializer), key=len)
    return path.read_bytes().index(raw) + len(raw) // 2


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40  # a high bit of one float's byte: a changed weight, still a valid file
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("name", ["planner.onnx", "policy.onnx", "planner_step.onnx", "weights.safetensors"])
@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
def test_a_flipped_byte_in_any_file_is_refused_before_inference(
    exported: tuple[Path, WorldModel], tmp_path: Path, name: str, backend: str
) -> None:
    out, _ = exported
    folder = tmp_path / "copy"
    shutil.copytree(out, folder)
    path = folder / name
    _flip(path, _largest_initializer_offset(path) if name.endswith(".onnx") else path.stat().st_size // 2)
    with pytest.raises(ExportError, match=re.escape(f"{name}: sha256")):
        load_backend(folder, backend)


@pytest.mark.parametrize("cut", ["half", "last 20 bytes"])
def test_a_truncated_file_is_refused_naming_it(exported: tuple[Path, WorldModel], tmp_path: Path, cut: str) -> None:
    out, _ = exported
    folder = tmp_path / "copy"
    shutil.copytree(out, folder)
    data = (folder / "planner.onnx").read_bytes()
    (folder / "planner.onnx").write_bytes(data[: len(data) // 2] if cut == "half" else data[:-20])
    with pytest.raises(ExportError, match="planner.onnx: sha256 .* truncated"):
        load_backend(folder, "onnxruntime")
    (folder / "model.json").write_text((out / "model.json").read_text()[:200])
    with pytest.raises(ExportError, match="model.json is not valid JSON"):
        load_backend(folder, "onnxruntime")


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        ({"dt": 0.01}, "'dt'"),
        ({"planner": {**dataclasses.asdict(PLANNER), "iterations": 5}}, "'planner.iterations'"),
        ({"config_hash": "f" * 16}, "'config_hash'"),
        ({"weights_sha256": "0" * 64}, "'weights_sha256'"),
    ],
)
def test_model_json_is_compared_with_every_embedded_contract(
    exported: tuple[Path, WorldModel], tmp_path: Path, edit: dict[str, object], field: str
) -> None:
    """An edited model.json (or files of two exports in one folder) is refused, naming the field."""
    out, _ = exported
    folder = tmp_path / "copy"
    shutil.copytree(out, folder)
    data = json.loads((folder / "model.json").read_text())
    (folder / "model.json").write_text(json.dumps({**data, **edit}))
    with pytest.raises(ModelContractError, match=f"embedded contract field {re.escape(field)} differs from model.json"):
        load_backend(folder, "onnxruntime")


def test_files_outside_the_manifest_are_refused(exported: tuple[Path, WorldModel], tmp_path: Path) -> None:
    out, _ = exported
    folder = tmp_path / "copy"
    shutil.copytree(out, folder)
    with pytest.raises(ExportError, match=r"policy.fp16.onnx is not part of this export"):
        load_backend(folder, "onnxruntime", fp16=True)
    data = json.loads((folder / "model.json").read_text())
    del data["files"]
    (folder / "model.json").write_text(json.dumps(data))
    with pytest.raises(ExportError, match="lacks the sha256 list"):
        load_backend(folder, "onnxruntime")
    (folder / "model.json").write_text(json.dumps({**data, "format_version": 1}))
    with pytest.raises(ModelContractError, match="format_version 1 is not supported"):
        load_backend(folder, "onnxruntime")


def test_loader_errors_are_clear(
    exported: tuple[Path, WorldModel], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, _ = exported
    with pytest.raises(ConfigError, match="backend='jax'; valid"):
        load_backend(out, "jax")
    with pytest.raises(ModelContractError, match="model.json not found"):
        load_backend(tmp_path, "onnxruntime")
    with pytest.raises(ConfigError, match="CUDAExecutionProvider"):
        load_backend(out, "onnxruntime", provider="cuda")
    with pytest.raises(ConfigError, match="provider='rocm'"):
        load_backend(out, "onnxruntime", provider="rocm")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ConfigError, match="pip install onnxruntime"):
        load_backend(out, "onnxruntime")


def test_fp16_export_keeps_float32_io_and_close_actions(tmp_path: Path) -> None:
    import onnxruntime as ort

    m = _model()
    export_onnx(m, _contract(m), PLANNER, tmp_path, fp16=True, graphs=("policy",))
    sess = ort.InferenceSession(str(tmp_path / "policy.fp16.onnx"), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].type == "tensor(float)"
    obs = np.random.default_rng(4).standard_normal((8, REACH_LAYOUT.size)).astype(np.float32)
    (actions,) = sess.run(None, {"obs": obs})
    with torch.no_grad():
        ref = m.policy(m.encode(torch.from_numpy(obs)), torch.zeros(8, 7)).numpy()
    err = np.abs(actions - ref).max()
    assert 0.0 < err < 5e-2  # half precision: not bit-equal, but close


def test_control_loop_runs_the_exported_planner(exported: tuple[Path, WorldModel]) -> None:
    """The ROS-free loop on the real onnxruntime backend and chunk generator: it plans (never holds)
    from the FR3 start pose, and each chunk starts where the previous command state was.
    """
    from wm_control.runtime import FallbackLevel, control_loop

    out, _ = exported
    backend = load_backend(out, "onnxruntime", threads=1)
    now = [100.0]
    loop = control_loop(backend, clock=lambda: now[0], margin=0.004)
    generator = loop.generator
    assert FR3.start_q is not None
    q = np.array(FR3.start_q)
    loop.reset(q)
    goal = np.array([0.5, 0.1, 0.4])
    for _ in range(5):
        before = loop.command_state
        cmd = loop.step(now[0], q, np.zeros(7), goal)
        assert cmd.level in (FallbackLevel.MPPI, FallbackLevel.PARTIAL, FallbackLevel.POLICY), cmd.reason
        assert np.all(np.isfinite(cmd.chunk.positions)) and np.abs(cmd.action).max() <= 1.0
        first_step = cmd.chunk.positions[0] - before.q
        assert np.all(np.abs(first_step) <= generator.velocity_scale * 0.02 + 1e-9)
        now[0] += 0.02
    assert loop.counters["ticks"] == 5


def test_ort_config_spin_names_graphs() -> None:
    from wm_control.runtime.onnx_backend import OrtConfig

    assert OrtConfig().spin == ("planner",)
    with pytest.raises(ConfigError, match=r"OrtConfig.spin names unknown graph\(s\) \['planer'\]"):
        OrtConfig(spin=("planer",))
