"""Export to ONNX and the runtime backends: parity with torch, the contract, and clear failures."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from safetensors.torch import load_file, save_file

from export.onnx_export import GRAPHS, export_onnx
from export.parity import FP32_TOLERANCE, ParityResult, compare_backends, decode_resolution
from wm_control.chunking import ChunkConfig, ChunkGenerator
from wm_control.contract import CONTRACT_VERSION, ModelContract
from wm_control.errors import ConfigError, ModelContractError
from wm_control.model.config import model_config
from wm_control.model.world_model import WorldModel
from wm_control.observation import REACH_LAYOUT
from wm_control.planning.config import MppiConfig
from wm_control.planning.mppi import draw_noise
from wm_control.robot import FR3
from wm_control.runtime.load import load_backend
from wm_control.runtime.noise import check_noise, draw_noise_np
from wm_control.runtime.onnx_backend import load_onnx_contract
from wm_control.runtime.weights import weights_sha256

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
    c = ModelContract(
        format_version=CONTRACT_VERSION,
        task="fr3-reach",
        robot="fr3",
        joint_names=FR3.joint_names,
        dt=0.02,
        observation=REACH_LAYOUT.to_dict(),
        action={
            "meaning": "normalised joint velocity",
            "low": -1.0,
            "high": 1.0,
            "velocity_scale": [float(v) for v in ChunkGenerator(FR3, ChunkConfig(), 0.02).velocity_scale],
        },
        planner=dataclasses.asdict(PLANNER),
        model=dataclasses.asdict(m.cfg),
        model_preset="small",
        config_hash="0123456789abcdef",
        training_step=123,
        export_time="2026-11-22T00:00:00+00:00",
        weights_sha256=weights_sha256(m),
    )
    return dataclasses.replace(c, **changes)  # type: ignore[arg-type]


@pytest.fixture(scope="module", params=[True, False], ids=["episodic", "continuing"])
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, WorldModel]:
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    out = tmp_path_factory.mktemp("export")
    m = _model(episodic=request.param)
    export_onnx(m, _contract(m), PLANNER, out)
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(out / "weights.safetensors"))
    return out, m


def test_files_are_valid_onnx_with_the_contract(exported: tuple[Path, WorldModel]) -> None:
    out, m = exported
    stored = json.loads((out / "model.json").read_text())
    for graph in GRAPHS:
        proto = onnx.load(str(out / f"{graph}.onnx"))
        onnx.checker.check_model(proto, full_check=True)
        assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
        contract = load_onnx_contract(out / f"{graph}.onnx")
        assert contract.to_dict() == stored
        assert contract.weights_sha256 == weights_sha256(m) and contract.planner["num_samples"] == 64


class _Shifted:
    """A backend that returns ``inner``'s plans with the action moved by ``delta``."""

    def __init__(self, inner: object, delta: float) -> None:
        self._inner, self._delta = inner, delta

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def plan(self, *args: object):  # noqa: ANN202
        out = self._inner.plan(*args)  # type: ignore[attr-defined]
        return out._replace(action=out.action + self._delta)


class _Tied(_Shifted):
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
    wrong = compare_backends(torch_backend, _Shifted(torch_backend, 0.05), cases=2)
    assert wrong.tie_cases == 0 and not wrong.verdict(FP32_TOLERANCE)[1]
    assert wrong.diffs["planner.action[eval]"] == pytest.approx(0.05, rel=1e-3)
    tied = compare_backends(_Tied(torch_backend, 0.0), _Shifted(torch_backend, 0.05), cases=2)
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
        ({"observation_size": 39}, "'observation'"),
        ({"observation_layout": "fr3-reach-v2"}, "'observation'"),
        ({"velocity_scale": [9.0] * 7}, "'action.velocity_scale'"),
    ],
)
def test_contract_check_names_the_field(kwargs: dict[str, object], field: str) -> None:
    m = _model()
    c = _contract(m)
    c.check(robot="fr3", dt=0.02, joint_names=FR3.joint_names, observation_size=40, observation_layout="fr3-reach-v4")
    with pytest.raises(ModelContractError, match=field):
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


def test_mixed_or_tampered_exports_are_refused(exported: tuple[Path, WorldModel], tmp_path: Path) -> None:
    out, m = exported
    folder = tmp_path / "copy"
    shutil.copytree(out, folder)
    weights = load_file(str(folder / "weights.safetensors"))
    weights = {k: (v + 1.0 if k.startswith("pi_head") else v) for k, v in weights.items()}
    save_file(weights, str(folder / "weights.safetensors"))
    with pytest.raises(ModelContractError, match="weights_sha256"):
        load_backend(folder, "torch")
    other = json.loads((folder / "model.json").read_text())
    other["weights_sha256"] = "0" * 64
    (folder / "model.json").write_text(json.dumps(other))
    with pytest.raises(ModelContractError, match="different exports"):
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
    from wm_control.runtime import ControlLoop, FallbackLevel, LoopConfig

    out, _ = exported
    backend = load_backend(out, "onnxruntime", threads=1)
    generator = ChunkGenerator(FR3, ChunkConfig(), 0.02)
    now = [100.0]
    loop = ControlLoop(backend, generator, LoopConfig(margin=0.004), clock=lambda: now[0])
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
