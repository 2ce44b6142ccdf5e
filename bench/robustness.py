"""Trust nothing that is loaded or received: a catalogue of the bad files and bad inputs a new user or a
faulty robot produces, each tried against the real code and its outcome classified.

    python bench/robustness.py            # full catalogue: CLI cases, 20,000 fuzzed action sequences
    python bench/robustness.py --quick    # the fast subset tests/test_robustness.py runs

Outcomes:

- ``refused_with_clear_error``: a ``WmControlError`` whose message is one line and names what is wrong
  (the case's token: a file or field name); for the command-line tools, exit code 2 and exactly one
  ``<tool>: error:`` line naming it, with no traceback;
- ``held_safely``: a control-loop tick that did not plan from the bad input (``HOLD``, or for a backend
  fault a fallback below ``PARTIAL``) and says why; the chunk-generator fuzz with zero limit
  violations; an external conformance checker that passes;
- ``silently_accepted``: no error and no hold (or the fuzz found violations, or the checker failed);
- ``raw_traceback``: any other exception, an error that does not name the token or spans several
  lines, a command-line traceback or another exit code.

Everything runs on throw-away copies in a work folder (a temporary one unless ``--workdir``): a small
random model exported once (and a second one, for files mixed from two exports), a tiny training run
for a complete checkpoint, and a copy of the shipped model-only checkpoint ``models/fr3-reach``.
Writes ``docs/results/robustness.json`` (``--no-write``: prints it only); progress goes to stderr.
Exits 1 when any case was silently accepted or ended in a raw traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property, partial
from pathlib import Path
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from _common import machine_info, write_result

import sim
from wm_control.chunking import ChunkConfig, ChunkGenerator, CommandState
from wm_control.contract import ModelContract
from wm_control.errors import WmControlError
from wm_control.robot import FR3, velocity_bounds
from wm_control.runtime import Backend, Command, ControlLoop, FallbackLevel, control_loop, load_backend
from wm_control.runtime.backend import PlanNoiseArrays, PlanOutput, StepNoise, StepOutput
from wm_control.trajectory import TrajectoryChunk, sample_hermite

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "models" / "fr3-reach"
RESULT_FILE = "robustness.json"

REFUSED, HELD, ACCEPTED, RAW = "refused_with_clear_error", "held_safely", "silently_accepted", "raw_traceback"
COUNT_KEYS = {REFUSED: REFUSED, HELD: HELD, ACCEPTED: ACCEPTED, RAW: "raw_tracebacks"}

GOAL = np.array([0.5, 0.1, 0.4])  # inside the box the fr3-reach model was trained on [m]
START_Q = np.asarray(FR3.start_q, dtype=np.float64)  # franka_ros2's start pose [rad]
# fr3-reach's own control contract (its task owns these numbers): control period [s], chunk shaping,
# and the servo period of the simulated 1 kHz layer [s].
_REACH = sim.make("fr3-reach")
TICK: float = _REACH.config.dt
CHUNKS: ChunkConfig = _REACH.config.chunk
SERVO: float = _REACH.generator.servo_period
_REACH.close()
MARGIN_TOLERANCE = 1e-8  # rounding allowed on the chunk generator's position margin [rad]
PLANNER = {"horizon": 3, "iterations": 2, "num_samples": 32, "num_elites": 4, "num_pi_trajs": 2}
CLI_ENV = {"MUJOCO_GL": "egl", "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
# The tiny training run behind the complete (resumable) checkpoint: 50 random-action steps, no updates.
TINY_TRAIN = [
    "task=fr3-reach",
    "model=small",
    "task.env.episode_seconds=0.4",
    "model.overrides.enc_dim=32",
    "model.overrides.mlp_dim=32",
    "model.overrides.latent_dim=16",
    "planner.num_samples=32",
    "planner.num_elites=8",
    "planner.num_pi_trajs=4",
    "planner.iterations=2",
    "agent.batch_size=32",
    "train.steps=50",
    "train.seed_steps=100",
    "train.eval_freq=0",
    "train.checkpoint_freq=0",
    "train.save_video=false",
    "train.progress=false",
    "threads=1",
]


class HarnessError(RuntimeError):
    """The catalogue itself could not set a case up (reported as a raw traceback of that case)."""


@dataclass(frozen=True)
class Case:
    """One bad file or input and what a safe outcome must say.

    name: what is tried. group: the catalogue section.
    token: what a refusal's message (or a hold's reason, or a CLI error line) must contain: the file or
        field that is wrong.
    run: tries it; its return value or exception is judged by ``expect``:
        ``"refusal"``: a one-line ``WmControlError`` naming ``token``;
        ``"hold"``: a ``Command`` at ``HOLD`` whose reason names ``token``;
        ``"fallback"``: a ``Command`` below ``PARTIAL`` (the faulty output unused) whose reason names ``token``;
        ``"check"``: ``run`` returns ``(passed, detail)`` (a fuzz, a conformance checker);
        ``"cli"``: a finished ``subprocess``: exit code 2, exactly one stderr line starting with ``prefix``
        and naming ``token``, no traceback.
    prefix: the error-line prefix of a command-line tool (``"cli"`` only).
    """

    name: str
    group: str
    token: str
    run: Callable[[], Any]
    expect: str = "refusal"
    prefix: str = ""


# --- classification --------------------------------------------------------------------------------------
def classify(case: Case, workdir: Path) -> dict[str, str]:
    """Run ``case`` and classify what happened: ``{"name", "group", "outcome", "detail"}``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = case.run()
    except WmControlError as exc:
        outcome, detail = _judge_error(case, exc)
    except Exception as exc:  # anything else is exactly what the catalogue is looking for
        outcome, detail = RAW, _describe(exc)
    else:
        outcome, detail = _judge_value(case, value)
    return {"name": case.name, "group": case.group, "outcome": outcome, "detail": _one_line(detail, workdir)}


def _judge_error(case: Case, exc: WmControlError) -> tuple[str, str]:
    message = str(exc)
    if case.expect != "refusal":
        return RAW, f"raised instead of holding: {_describe(exc)}"
    if "\n" in message.strip():
        return RAW, f"{type(exc).__name__} spans {len(message.strip().splitlines())} lines: {message}"
    if case.token not in message:
        return RAW, f"{type(exc).__name__} does not name {case.token!r}: {message}"
    return REFUSED, f"{type(exc).__name__}: {message}"


def _judge_value(case: Case, value: Any) -> tuple[str, str]:
    if case.expect == "refusal":
        return ACCEPTED, f"no error; returned {_short(value)}"
    if case.expect in ("hold", "fallback"):
        if not isinstance(value, Command):
            raise HarnessError(f"case {case.name!r} returned {_short(value)}, not a Command")
        return _judge_command(case, value)
    if case.expect == "check":
        passed, detail = value
        return (HELD if passed else ACCEPTED), detail
    if case.expect == "cli":
        return _judge_cli(case, value)
    raise HarnessError(f"case {case.name!r}: unknown expectation {case.expect!r}")


def _judge_command(case: Case, cmd: Command) -> tuple[str, str]:
    described = f"{cmd.level.name}: {cmd.reason or 'no reason given'}"
    safe_level = FallbackLevel.HOLD if case.expect == "hold" else FallbackLevel.POLICY
    if cmd.level < safe_level:
        return ACCEPTED, f"planned from it at {described}"
    problem = _command_problem(cmd)
    if problem:
        return ACCEPTED, f"{described}, but {problem}"
    if case.token not in cmd.reason:
        return RAW, f"{described} (the reason does not name {case.token!r})"
    return HELD, described


def _command_problem(cmd: Command) -> str:
    """What is wrong with a fallback command a 1 kHz layer would execute ('' when nothing)."""
    action = np.asarray(cmd.action, dtype=np.float64)
    if action.shape != (FR3.dof,) or not np.isfinite(action).all() or np.abs(action).max() > 1.0:
        return f"its action is {action.tolist()}"
    if cmd.level == FallbackLevel.HOLD and np.any(action != 0.0):
        return "a HOLD with a non-zero action"
    if len(cmd.chunk.positions):
        try:
            cmd.chunk.validate(FR3.dof)
        except WmControlError as exc:
            return f"its chunk is malformed ({exc})"
    return ""


def _judge_cli(case: Case, proc: subprocess.CompletedProcess[str]) -> tuple[str, str]:
    errors = [line for line in proc.stderr.splitlines() if line.startswith(case.prefix)]
    lines = [line for line in proc.stderr.splitlines() if line.strip()] or ["(no stderr)"]
    if "Traceback" in proc.stderr or "Traceback" in proc.stdout:
        return RAW, f"exit {proc.returncode} with a traceback: {lines[-1]}"
    if proc.returncode == 0 and not errors:
        return ACCEPTED, f"exit 0: {(proc.stdout.strip().splitlines() or ['(no output)'])[-1]}"
    if proc.returncode != 2 or len(errors) != 1:
        said = errors[0] if errors else " / ".join(lines[:2])
        return RAW, f"exit {proc.returncode}, {len(errors)} '{case.prefix}' lines; stderr: {said}"
    if case.token not in errors[0]:
        return RAW, f"exit 2 but the error does not name {case.token!r}: {errors[0]}"
    return REFUSED, f"exit 2: {errors[0]}"


def _describe(exc: BaseException) -> str:
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    at = f" (at {Path(where.filename).name}:{where.lineno})" if where else ""
    return f"{type(exc).__name__}: {exc}{at}"


def _short(value: Any) -> str:
    text = type(value).__name__ if not isinstance(value, str | int | float | tuple) else repr(value)
    return text[:120]


def _one_line(text: str, workdir: Path) -> str:
    text = text.replace(str(workdir), "<workdir>").replace(str(REPO), "<repo>")
    text = " | ".join(part.strip() for part in text.strip().splitlines() if part.strip())
    return text if len(text) <= 600 else text[:597] + "..."


# --- shared set-up -------------------------------------------------------------------------------------
class FakeClock:
    """A monotonic clock the catalogue moves by hand: ticks are exactly ``TICK`` apart and planning
    takes no time unless a case says so.
    """

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float = TICK) -> float:
        """Move time forward; returns the new time [s]."""
        self.now += seconds
        return self.now


class WrappedBackend:
    """A real ``Backend`` with some of its calls replaced (an injected fault) or another contract.

    Args:
        inner: the loaded backend.
        contract: the contract to report instead of ``inner``'s.
        calls: replacements of ``policy``, ``plan``, ``plan_init``, ``plan_step`` by name; kept by
            reference, so a case can inject a fault after some good ticks.
    """

    def __init__(
        self,
        inner: Backend,
        contract: ModelContract | None = None,
        calls: dict[str, Callable[..., Any]] | None = None,
    ) -> None:
        self.inner = inner
        self.name = f"wrapped {inner.name}"
        self.contract = contract if contract is not None else inner.contract
        self.planner = inner.planner
        self.obs_dim, self.action_dim = inner.obs_dim, inner.action_dim
        self.latent_dim, self.num_q = inner.latent_dim, inner.num_q
        self._calls = calls if calls is not None else {}

    def policy(self, obs: np.ndarray) -> np.ndarray:
        """The inner policy, or its replacement."""
        return self._calls.get("policy", self.inner.policy)(obs)

    def plan(self, obs: np.ndarray, mean: np.ndarray, noise: PlanNoiseArrays, explore_scale: float) -> PlanOutput:
        """The inner full solve, or its replacement."""
        return self._calls.get("plan", self.inner.plan)(obs, mean, noise, explore_scale)

    def plan_init(self, obs: np.ndarray, pi_eps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The inner first stage of an anytime solve, or its replacement."""
        return self._calls.get("plan_init", self.inner.plan_init)(obs, pi_eps)

    def plan_step(
        self,
        z: np.ndarray,
        prior: np.ndarray,
        mean: np.ndarray,
        std: np.ndarray,
        noise: StepNoise,
        explore_scale: float,
    ) -> StepOutput:
        """The inner MPPI iteration, or its replacement."""
        return self._calls.get("plan_step", self.inner.plan_step)(z, prior, mean, std, noise, explore_scale)


class Fixtures:
    """What the cases share, built once on first use in ``workdir``: the exports, the loaded backend,
    the tiny training run, copies of the shipped checkpoint.
    """

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._copies = Counter[str]()

    # exports
    @cached_property
    def export_dir(self) -> Path:
        """A small random fr3-reach model, exported (all graphs, weights, model.json)."""
        return self._export(seed=0, folder="export", graphs=None)

    @cached_property
    def other_export_dir(self) -> Path:
        """Another random model of the same shape: the planner graph of a different export."""
        return self._export(seed=1, folder="other-export", graphs=("planner",))

    def _export(self, seed: int, folder: str, graphs: tuple[str, ...] | None) -> Path:
        import torch

        from export.contract import make_contract
        from export.onnx_export import GRAPHS, export_onnx
        from sim.contract import control_contract
        from wm_control.model.config import model_config
        from wm_control.model.world_model import WorldModel
        from wm_control.planning.config import MppiConfig

        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        env = sim.make("fr3-reach")
        control = control_contract(env)
        env.close()
        obs_dim = int(control.observation["size"])
        torch.manual_seed(seed)
        model = WorldModel(
            model_config("small", obs_dim, 7, enc_dim=32, mlp_dim=32, latent_dim=32, episodic=True)
        ).eval()
        planner = MppiConfig(**PLANNER)
        contract = make_contract(
            run={"task": {"name": "fr3-reach"}},
            control=control,
            model=model,
            planner=planner,
            training_step=0,
        )
        out = self.workdir / folder
        t0 = time.perf_counter()
        export_onnx(model, contract, planner, out, graphs=graphs or GRAPHS)
        progress(f"exported {folder} ({', '.join(graphs or GRAPHS)}) in {time.perf_counter() - t0:.1f} s")
        return out

    @cached_property
    def backend(self) -> Backend:
        """The intact export, loaded in onnxruntime."""
        return load_backend(self.export_dir, "onnxruntime", threads=1)

    # checkpoints
    @cached_property
    def run_dir(self) -> Path:
        """A tiny fr3-reach training run (apps.train): a complete format-2 checkpoint with a replay buffer."""
        from apps.train import override_keys, run

        plain = compose_config("train", [*TINY_TRAIN, f"run_dir={self.workdir / 'run'}"])
        out = self.workdir / "run"
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            code = run(plain, out, override_keys(TINY_TRAIN))
        if code != 0:
            raise HarnessError(f"the tiny training run exited with {code}")
        progress(f"tiny training run in {time.perf_counter() - t0:.1f} s")
        return out

    @cached_property
    def full_checkpoint(self) -> Path:
        """The checkpoint folder of the tiny run."""
        from wm_control.training.checkpoint import load_checkpoint

        return load_checkpoint(self.run_dir).path

    def copy(self, source: Path, label: str) -> Path:
        """A fresh copy of folder ``source`` to corrupt, under ``workdir/cases``."""
        self._copies[label] += 1
        slug = "".join(c if c.isalnum() else "-" for c in label.lower()).strip("-")
        dest = self.workdir / "cases" / f"{slug}-{self._copies[label]}"
        return Path(shutil.copytree(source, dest))

    def copy_run(self, label: str) -> tuple[Path, Path]:
        """A copy of the tiny run folder and its checkpoint folder inside it."""
        run = self.copy(self.run_dir, label)
        return run, run / self.full_checkpoint.relative_to(self.run_dir)

    # control loops
    def loop(self, backend: Backend | None = None, **options: Any) -> tuple[ControlLoop, FakeClock]:
        """A control loop over ``backend`` (default: the intact export) on a fake clock."""
        clock = FakeClock()
        return control_loop(backend or self.backend, clock=clock, **options), clock


def compose_config(name: str, overrides: list[str]) -> dict[str, Any]:
    """A hydra config as the entry point receives it (plain data, resolved)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from apps.common import config_dir, register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name=name, overrides=overrides)
    plain = OmegaConf.to_container(cfg, resolve=True)
    if not isinstance(plain, dict):
        raise HarnessError(f"config {name} is not a mapping")
    return {str(k): v for k, v in plain.items()}


def progress(line: str) -> None:
    """A progress line on stderr (stdout carries only the JSON)."""
    print(f"[robustness] {line}", file=sys.stderr, flush=True)


# --- file corruptions ----------------------------------------------------------------------------------
def truncate(path: Path, keep: float = 0.5) -> None:
    """Keep the first ``keep`` fraction of the file."""
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * keep)])


def chop(path: Path, nbytes: int) -> None:
    """Drop the last ``nbytes`` bytes."""
    path.write_bytes(path.read_bytes()[:-nbytes])


def flip_byte(path: Path, index: int | None = None) -> None:
    """Invert every bit of one byte (default: the middle one)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2 if index is None else index] ^= 0xFF
    path.write_bytes(bytes(data))


def garbage(path: Path) -> None:
    """Replace the file by 2 KiB of binary noise."""
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 2048, dtype=np.uint8).tobytes())


def flip_largest_initializer(path: Path) -> None:
    """Invert the high byte (sign and exponent) of the float in the middle of the ONNX file's largest
    initializer: one corrupted weight, the rest of the file intact and parseable.
    """
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    init = max(proto.graph.initializer, key=lambda t: len(t.raw_data), default=None)
    if init is None or len(init.raw_data) < 8:
        raise HarnessError(f"{path.name} has no initializer with raw data")
    data = path.read_bytes()
    start = data.find(init.raw_data)
    if start < 0:
        raise HarnessError(f"{path.name}: the bytes of initializer {init.name} are not stored verbatim")
    flip_byte(path, start + (len(init.raw_data) // 2) // 4 * 4 + 3)


def edit_json(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    """Apply ``edit`` to a JSON file's object and write it back."""
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data, indent=1))


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = data
    for key in parents:
        node = node[key]
    node[leaf] = value


def _change_a_unit(data: dict[str, Any]) -> None:
    field = next(f for f in data["observation"]["fields"] if f.get("unit"))
    field["unit"] = "deg" if field["unit"] != "deg" else "rad"


def _bump_step(state: dict[str, Any]) -> None:
    state["trainer"]["step"] += 1


def _bump_rng(state: dict[str, Any]) -> None:
    state["trainer"]["rng"]["state"]["state"] += 1


# --- groups --------------------------------------------------------------------------------------------
def export_cases(fx: Fixtures) -> list[Case]:
    """Bad export folders loaded with ``load_backend`` (onnxruntime, some also torch)."""
    from wm_control.runtime.manifest import sha256_file

    def load(label: str, corrupt: Callable[[Path], None], backend: str, **options: Any) -> Callable[[], Any]:
        def run() -> Any:
            folder = fx.copy(fx.export_dir, label)
            corrupt(folder)
            return load_backend(folder, backend, **options)

        return run

    def rehash(folder: Path, name: str) -> None:
        edit_json(folder / "model.json", lambda d: d["files"].__setitem__(name, sha256_file(folder / name)))

    def from_other_export(folder: Path, rehashed: bool) -> None:
        shutil.copyfile(fx.other_export_dir / "planner.onnx", folder / "planner.onnx")
        if rehashed:
            rehash(folder, "planner.onnx")

    def unlist(name: str) -> Callable[[Path], None]:
        return lambda folder: edit_json(folder / "model.json", lambda d: d["files"].pop(name))

    table: list[tuple[str, str, Callable[[Path], None], tuple[str, ...]]] = [
        ("model.json missing", "model.json", lambda f: (f / "model.json").unlink(), ("onnxruntime", "torch")),
        ("planner.onnx missing", "planner.onnx", lambda f: (f / "planner.onnx").unlink(), ("onnxruntime", "torch")),
        (
            "weights.safetensors missing",
            "weights.safetensors",
            lambda f: (f / "weights.safetensors").unlink(),
            ("torch", "onnxruntime"),
        ),
        *(
            (
                f"{g}.onnx: high byte flipped in its largest initializer",
                f"{g}.onnx",
                lambda f, g=g: flip_largest_initializer(f / f"{g}.onnx"),
                backends,
            )
            for g, backends in (
                ("planner", ("onnxruntime", "torch")),
                ("policy", ("onnxruntime",)),
                ("planner_init", ("onnxruntime",)),
                ("planner_step", ("onnxruntime",)),
            )
        ),  # fmt: skip
        (
            "weights.safetensors: a data byte flipped",
            "weights.safetensors",
            lambda f: flip_byte(f / "weights.safetensors"),
            ("torch", "onnxruntime"),
        ),
        (
            "weights.safetensors: a header byte flipped",
            "weights.safetensors",
            lambda f: flip_byte(f / "weights.safetensors", 41),
            ("torch", "onnxruntime"),
        ),
        ("planner.onnx truncated to half", "planner.onnx", lambda f: truncate(f / "planner.onnx"), ("onnxruntime",)),
        (
            "planner.onnx missing its last 20 bytes",
            "planner.onnx",
            lambda f: chop(f / "planner.onnx", 20),
            ("onnxruntime",),
        ),  # fmt: skip
        ("model.json truncated", "model.json", lambda f: truncate(f / "model.json"), ("onnxruntime", "torch")),
        ("model.json binary garbage", "model.json", lambda f: garbage(f / "model.json"), ("onnxruntime",)),
        (
            "model.json edited: dt=0.01",
            "'dt'",
            lambda f: edit_json(f / "model.json", lambda d: _set(d, "dt", 0.01)),
            ("onnxruntime",),
        ),  # fmt: skip
        (
            "model.json edited: planner.iterations=5",
            "planner.iterations",
            lambda f: edit_json(f / "model.json", lambda d: _set(d, "planner.iterations", 5)),
            ("onnxruntime",),
        ),
        (
            "model.json edited: config_hash",
            "config_hash",
            lambda f: edit_json(f / "model.json", lambda d: _set(d, "config_hash", "0" * 16)),
            ("onnxruntime",),
        ),
        (
            "model.json edited: weights_sha256",
            "weights_sha256",
            lambda f: edit_json(f / "model.json", lambda d: _set(d, "weights_sha256", "0" * 64)),
            ("onnxruntime", "torch"),
        ),
        (
            "model.json edited: an observation unit",
            "unit",
            lambda f: edit_json(f / "model.json", _change_a_unit),
            ("onnxruntime",),
        ),
        (
            "model.json edited: the files list removed",
            "files",
            lambda f: edit_json(f / "model.json", lambda d: d.pop("files")),
            ("onnxruntime",),
        ),
        (
            "model.json edited: format_version 1",
            "format_version",
            lambda f: edit_json(f / "model.json", lambda d: _set(d, "format_version", 1)),
            ("onnxruntime",),
        ),
        (
            "model.json edited: planner.onnx unlisted",
            "planner.onnx",
            unlist("planner.onnx"),
            ("onnxruntime",),
        ),
        (
            "model.json edited: weights.safetensors unlisted",
            "weights.safetensors",
            unlist("weights.safetensors"),
            ("torch",),
        ),
        (
            "planner.onnx copied from another export",
            "planner.onnx",
            lambda f: from_other_export(f, rehashed=False),
            ("onnxruntime",),
        ),
        (
            "planner.onnx copied from another export, model.json's sha256 updated",
            "planner.onnx",
            lambda f: from_other_export(f, rehashed=True),
            ("onnxruntime",),
        ),
    ]
    cases = [
        Case(f"{label} [{backend}]", "exports", token, load(label, corrupt, backend))
        for label, token, corrupt, backends in table
        for backend in backends
    ]
    intact: Callable[[Path], None] = lambda folder: None  # noqa: E731
    cases += [
        Case("fp16 requested, none exported [onnxruntime]", "exports", "fp16",
             load("fp16", intact, "onnxruntime", fp16=True)),
        Case("unknown backend 'tensorflow'", "exports", "backend", load("tensorflow", intact, "tensorflow")),
        Case("unknown provider 'gpu' [onnxruntime]", "exports", "provider",
             load("gpu", intact, "onnxruntime", provider="gpu")),
        Case("export folder that does not exist", "exports", "model.json",
             lambda: load_backend(fx.workdir / "no-such-export")),
    ]  # fmt: skip
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        cases.append(
            Case("provider cuda on a machine without it [onnxruntime]", "exports", "provider",
                 load("cuda", intact, "onnxruntime", provider="cuda"))
        )  # fmt: skip
    if not _has_cuda():
        cases.append(
            Case("backend tensorrt without a CUDA GPU", "exports", "tensorrt", load("trt", intact, "tensorrt"))
        )
    return cases


def _has_cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def contract_cases(fx: Fixtures) -> list[Case]:
    """A controller built for a model whose contract does not match it (or with options it must refuse)."""
    from wm_control.observation import observer_for
    from wm_control.robot import PANDA
    from wm_control.runtime import LoopConfig

    def loop_with(**changes: Any) -> Callable[[], Any]:
        def run() -> Any:
            contract = dataclasses.replace(fx.backend.contract, **changes)
            return control_loop(WrappedBackend(fx.backend, contract), clock=FakeClock())

        return run

    def fr3_controller_for(**changes: Any) -> Callable[[], Any]:
        """An FR3 controller (its own robot, shaping, observation builder) given the model."""

        def run() -> Any:
            own = fx.backend.contract
            contract = dataclasses.replace(own, **changes)
            generator = ChunkGenerator(FR3, CHUNKS, own.dt)
            observer = observer_for(own.observation, FR3)
            return ControlLoop(WrappedBackend(fx.backend, contract), generator, observer, LoopConfig(dt=own.dt))

        return run

    def wrapped_with(**attrs: Any) -> Callable[[], Any]:
        def run() -> Any:
            backend = WrappedBackend(fx.backend)
            for key, value in attrs.items():
                setattr(backend, key, value)
            return control_loop(backend, clock=FakeClock())

        return run

    def observation(**changes: Any) -> dict[str, Any]:
        return {**copy.deepcopy(fx.backend.contract.observation), **changes}

    def action(**changes: Any) -> dict[str, Any]:
        return {**copy.deepcopy(fx.backend.contract.action), **changes}

    def unit_changed() -> dict[str, Any]:
        obs = observation()
        _change_a_unit({"observation": obs})
        return obs

    scale = [2.0 * v for v in fx.backend.contract.action["velocity_scale"]]
    group = "contract vs controller"
    return [
        Case("control_loop(dt=0.01): dt is not an option", group, "dt",
             lambda: control_loop(fx.backend, clock=FakeClock(), dt=0.01)),
        Case("control_loop(servo_period=0.002): another servo period", group, "servo_period",
             lambda: control_loop(fx.backend, clock=FakeClock(), servo_period=0.002)),
        Case("control_loop: unknown option 'horizon'", group, "horizon",
             lambda: control_loop(fx.backend, clock=FakeClock(), horizon=5)),
        Case("control_loop: margin longer than the period", group, "margin",
             lambda: control_loop(fx.backend, clock=FakeClock(), margin=0.5)),
        Case("model contract robot 'panda' (joints of an FR3)", group, "joint_names", loop_with(robot="panda")),
        Case("model contract robot 'panda' given to an FR3 controller", group, "'robot'",
             fr3_controller_for(robot="panda", joint_names=PANDA.joint_names)),
        Case("model contract robot 'ur5' (unknown)", group, "'robot'", loop_with(robot="ur5")),
        Case("model contract with wrong joint names", group, "joint_names",
             loop_with(joint_names=tuple(f"joint{i}" for i in range(1, 8)))),
        Case("model contract with joints in another order", group, "joint_names",
             loop_with(joint_names=tuple(reversed(fx.backend.contract.joint_names)))),
        Case("model contract with another velocity_scale", group, "velocity_scale",
             loop_with(action=action(velocity_scale=scale))),
        Case("model contract with an unknown key in action.chunk", group, "action.chunk",
             loop_with(action=action(chunk={**fx.backend.contract.action["chunk"], "smoothing": 2}))),
        Case("model contract names an unknown observation layout", group, "observation",
             loop_with(observation=observation(name="fr3-reach-v99"))),
        Case("model contract with another observation unit", group, "unit", loop_with(observation=unit_changed())),
        Case("backend obs_dim differs from the layout", group, "obs_dim", wrapped_with(obs_dim=10)),
        Case("backend with one Q head", group, "num_q", wrapped_with(num_q=1)),
    ]  # fmt: skip


def loop_input_cases(fx: Fixtures) -> list[Case]:
    """Bad measurements, goals and timestamps at a running control loop: each tick must HOLD, saying why."""
    q0 = START_Q.copy()
    dq0 = np.zeros(7)

    def tick(**bad: Any) -> Callable[[], Command]:
        """One good tick, then one with ``bad`` replacing some of ``t, q, dq, goal, hold``."""

        def run() -> Command:
            loop, clock = fx.loop()
            loop.reset(q0)
            last = clock.advance()
            first = loop.step(last, q0, dq0, GOAL)
            if first.level != FallbackLevel.MPPI:
                raise HarnessError(f"the good tick before the bad one was {first.level.name}: {first.reason}")
            now = clock.advance()
            inputs: dict[str, Any] = {"t": now, "q": q0, "dq": dq0, "goal": GOAL, "hold": False}
            for key, value in bad.items():
                inputs[key] = value(now, last) if callable(value) else value
            return loop.step(inputs["t"], inputs["q"], inputs["dq"], inputs["goal"], hold=inputs["hold"])

        return run

    outside = q0.copy()
    outside[3] = FR3.limits.q_max[3] + 0.2  # joint 4 beyond its upper limit by more than the tolerance
    nan_q, inf_dq = q0.copy(), dq0.copy()
    nan_q[2], inf_dq[5] = np.nan, np.inf
    group = "loop inputs"
    table: list[tuple[str, str, dict[str, Any]]] = [
        ("q with a NaN", "non-finite input: q", {"q": nan_q}),
        ("dq with an inf", "non-finite input: dq", {"dq": inf_dq}),
        ("goal NaN", "non-finite input: goal", {"goal": np.full(3, np.nan)}),
        ("q of length 6", "wrong shape: q", {"q": q0[:6]}),
        ("q of shape (1, 7)", "wrong shape: q", {"q": q0[None]}),
        ("q is None", "wrong shape: q", {"q": None}),
        ("goal of length 2", "wrong shape: goal", {"goal": GOAL[:2]}),
        ("goal a string", "bad input: goal", {"goal": "0.5, 0.1, 0.4"}),
        ("q complex", "bad input: q", {"q": q0 + 1j}),
        ("stale state (t 100 ms old)", "stale state", {"t": lambda now, last: now - 0.1}),
        ("state from the future (t 100 ms ahead)", "state from the future", {"t": lambda now, last: now + 0.1}),
        ("t NaN", "non-finite input: t", {"t": math.nan}),
        ("t a string", "bad input: t", {"t": "now"}),
        ("t None", "bad input: t", {"t": None}),
        ("timestamp going backwards", "state older than the last", {"t": lambda now, last: last - 0.01}),
        ("a repeated timestamp", "repeated state", {"t": lambda now, last: last}),
        ("q outside the joint range", "implausible input: q", {"q": outside}),
        ("q in degrees", "implausible input: q", {"q": np.degrees(q0)}),
        ("q = 1e30", "implausible input: q", {"q": np.full(7, 1e30)}),
        ("dq = 1e6", "implausible input: dq", {"dq": np.full(7, 1e6)}),
        ("goal (100, 100, 100)", "goal outside the workspace", {"goal": np.full(3, 100.0)}),
        ("goal 1e30", "goal outside the workspace", {"goal": np.full(3, 1e30)}),
        ("goal in millimetres", "goal outside the workspace", {"goal": GOAL * 1000.0}),
        ("hold requested", "hold requested", {"hold": True}),
    ]
    return [Case(name, group, token, tick(**bad), expect="hold") for name, token, bad in table]


def backend_fault_cases(fx: Fixtures) -> list[Case]:
    """A backend that raises or returns garbage mid-run: the loop falls back below PARTIAL, saying why."""

    def fault(message: str) -> Callable[..., Any]:
        def raise_(*args: Any) -> Any:
            raise RuntimeError(message)

        return raise_

    def plan_returning(**changes: Any) -> Callable[..., Any]:
        def plan(*args: Any) -> Any:
            out = fx.backend.plan(*args)
            return out._replace(**{k: v(out) if callable(v) else v for k, v in changes.items()})

        return plan

    def tick(slow_plan: bool = False, **calls: Callable[..., Any]) -> Callable[[], Command]:
        """One good tick, then the faults ``calls`` injected. ``slow_plan``: the full solve takes
        50 ms (beyond the 16 ms budget), so the second tick plans anytime (``plan_init`` + ``plan_step``).
        """

        def run() -> Command:
            q0, dq0 = START_Q.copy(), np.zeros(7)
            faults: dict[str, Callable[..., Any]] = {}
            backend = WrappedBackend(fx.backend, calls=faults)
            loop, clock = fx.loop(backend)
            if slow_plan:

                def slow(*args: Any) -> Any:
                    clock.advance(0.05)
                    return fx.backend.plan(*args)

                faults["plan"] = slow
            loop.reset(q0)
            first = loop.step(clock.advance(), q0, dq0, GOAL)
            if first.level != FallbackLevel.MPPI:
                raise HarnessError(f"the good tick before the fault was {first.level.name}: {first.reason}")
            faults.update(calls)
            return loop.step(clock.advance(), q0, dq0, GOAL)

        return run

    group = "backend faults"
    nan_action = plan_returning(action=lambda out: np.full_like(out.action, np.nan))
    return [
        Case("plan raises", group, "backend error: RuntimeError: injected plan fault",
             tick(plan=fault("injected plan fault")), expect="fallback"),
        Case("plan returns a NaN action", group, "non-finite output from plan", tick(plan=nan_action),
             expect="fallback"),
        Case("plan returns action 1.5", group, "action out of range from plan",
             tick(plan=plan_returning(action=lambda out: np.full_like(out.action, 1.5))), expect="fallback"),
        Case("plan returns an action of shape (6,)", group, "bad output from plan",
             tick(plan=plan_returning(action=lambda out: out.action[:6])), expect="fallback"),
        Case("plan returns a NaN warm start", group, "non-finite output from plan",
             tick(plan=plan_returning(mean=lambda out: np.full_like(out.mean, np.nan))), expect="fallback"),
        Case("plan returns None", group, "bad output from plan", tick(plan=lambda *a: None), expect="fallback"),
        Case("plan_step raises (anytime solve)", group, "injected plan_step fault",
             tick(slow_plan=True, plan_step=fault("injected plan_step fault")), expect="fallback"),
        Case("plan_init returns a NaN latent (anytime solve)", group, "non-finite output from plan_init",
             tick(slow_plan=True, plan_init=lambda obs, eps: (np.full(fx.backend.latent_dim, np.nan),
                                                              fx.backend.plan_init(obs, eps)[1])),
             expect="fallback"),
        Case("plan and policy raise", group, "injected policy fault",
             tick(plan=fault("injected plan fault"), policy=fault("injected policy fault")), expect="fallback"),
        Case("plan raises, policy returns NaN", group, "non-finite output from policy",
             tick(plan=fault("injected plan fault"), policy=lambda obs: np.full(7, np.nan)), expect="fallback"),
    ]  # fmt: skip


def checkpoint_cases(fx: Fixtures) -> list[Case]:
    """Corrupted checkpoints given to ``load_checkpoint``, to export and to resume."""
    from apps.common import env_factory, recorded_contract
    from apps.train import run as train_run
    from wm_control.training.buffer import EpisodeBuffer
    from wm_control.training.checkpoint import load_checkpoint, save_checkpoint

    def load(source: Callable[[], Path], label: str, corrupt: Callable[[Path], None]) -> Callable[[], Any]:
        def run() -> Any:
            path = fx.copy(source(), label)
            corrupt(path)
            ckpt = load_checkpoint(path)
            if not ckpt.model_only:
                EpisodeBuffer.load(ckpt.buffer_path)  # what Trainer.restore reads next
            return ckpt

        return run

    def shipped() -> Path:
        return SHIPPED

    def full() -> Path:
        return fx.full_checkpoint

    def export_contract(strip: bool, **changes: Any) -> Callable[[], Any]:
        """What export does with a checkpoint: its recorded contract, checked against today's env."""

        def run() -> Any:
            ckpt = load_checkpoint(fx.full_checkpoint)
            state = copy.deepcopy({k: v for k, v in ckpt.state.items() if k not in ("contract", "contract_migrated")})
            if not strip:
                state["contract"] = {**copy.deepcopy(ckpt.contract or {}), **changes}
            state["model_only"] = True
            path = save_checkpoint(fx.workdir / "cases", f"contract-{len(changes)}-{strip}", ckpt.tensors, state)
            env = env_factory(ckpt.config["task"])(False)
            try:
                return recorded_contract(load_checkpoint(path), env)
            finally:
                env.close()

        return run

    def resume(source: Callable[[], Path], label: str, **requested: Any) -> Callable[[], Any]:
        def run() -> Any:
            path = fx.copy(source(), label)
            overridden = [f"{k}.{kk}" for k, v in requested.items() for kk in _leaves(v)]
            cfg = {"resume": str(path), **requested}
            with contextlib.redirect_stdout(sys.stderr):
                return train_run(cfg, fx.workdir / "cases" / f"resumed-{label}", ["resume", *overridden])

        return run

    edits: list[tuple[str, str, Callable[[Path], None]]] = [
        ("truncated state.json", "state.json", lambda p: truncate(p / "state.json")),
        ("binary state.json", "state.json", lambda p: garbage(p / "state.json")),
        ("state.json edited: trainer.step", "state.json", lambda p: edit_json(p / "state.json", _bump_step)),
        ("state.json edited: RNG state", "state.json", lambda p: edit_json(p / "state.json", _bump_rng)),
        ("truncated weights.safetensors", "weights.safetensors", lambda p: truncate(p / "weights.safetensors")),
        (
            "a flipped byte in weights.safetensors",
            "weights.safetensors",
            lambda p: flip_byte(p / "weights.safetensors"),
        ),
        ("state.json missing", "state.json", lambda p: (p / "state.json").unlink()),
    ]
    full_only: list[tuple[str, str, Callable[[Path], None]]] = [
        ("buffer.npz missing", "buffer.npz", lambda p: (p / "buffer.npz").unlink()),
        ("truncated buffer.npz", "buffer.npz", lambda p: truncate(p / "buffer.npz")),
        ("state.json relabelled format 1", "state.json",
         lambda p: edit_json(p / "state.json", lambda s: _set(s, "format", 1))),
    ]  # fmt: skip
    group = "checkpoints"
    cases = [
        Case(f"{label} (shipped model-only copy)", group, token, load(shipped, label, corrupt))
        for label, token, corrupt in edits
    ]
    cases += [
        Case(f"{label} (full checkpoint)", group, token, load(full, label, corrupt))
        for label, token, corrupt in [*edits, *full_only]
    ]
    cases += [
        Case("export of a checkpoint without a recorded contract", group, "migrate_checkpoint",
             export_contract(strip=True)),
        Case("export of a checkpoint recorded for another task version (dt 0.01)", group, "'dt'",
             export_contract(strip=False, dt=0.01)),
        Case("resume of the shipped model-only copy", group, "model-only", resume(shipped, "resume-model-only")),
        Case("resume with another model size", group, "mlp_dim",
             resume(lambda: fx.run_dir, "resume-other-size", model={"overrides": {"mlp_dim": 48}})),
    ]  # fmt: skip
    return cases


def _leaves(value: Any, prefix: str = "") -> list[str]:
    """Dotted keys of the leaves of a nested mapping (``{"a": {"b": 1}}`` -> ``["a.b"]``)."""
    if not isinstance(value, dict):
        return [prefix.rstrip(".")]
    return [leaf for k, v in value.items() for leaf in _leaves(v, f"{prefix}{k}.")]


def cli_cases(fx: Fixtures) -> list[Case]:
    """The console entry points on bad checkpoints and options: one error line, exit code 2."""

    def cli(module: str, *args: Callable[[], str] | str) -> Callable[[], subprocess.CompletedProcess[str]]:
        def run() -> subprocess.CompletedProcess[str]:
            argv = [a() if callable(a) else a for a in args]
            env = {
                **os.environ,
                **CLI_ENV,
                "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
            }
            cwd = fx.workdir / "cli"
            cwd.mkdir(exist_ok=True)
            return subprocess.run(
                [sys.executable, "-m", module, *argv], capture_output=True, text=True, cwd=cwd, env=env, timeout=600
            )

        return run

    def edited_run(label: str) -> str:
        run, ckpt = fx.copy_run(label)
        edit_json(ckpt / "state.json", _bump_step)
        return str(run)

    def without_contract() -> str:
        from wm_control.training.checkpoint import load_checkpoint, save_checkpoint

        ckpt = load_checkpoint(fx.full_checkpoint)
        state = {k: v for k, v in ckpt.state.items() if k not in ("contract", "contract_migrated")}
        state["model_only"] = True
        return str(save_checkpoint(fx.workdir / "cases", "cli-no-contract", ckpt.tensors, state))

    export, train = "wm-control-export: error:", "wm-control-train: error:"
    out = lambda: f"out={fx.workdir / 'cli-export'}"  # noqa: E731
    group = "cli"
    return [
        Case("wm-control-export of a checkpoint with an edited state.json", group, "state.json",
             cli("apps.export", lambda: f"checkpoint={edited_run('cli-export-edited')}", out), "cli", export),
        Case("wm-control-train resume of a checkpoint with an edited state.json", group, "state.json",
             cli("apps.train", lambda: f"resume={edited_run('cli-train-edited')}", "train.steps=80",
                 "train.progress=false"), "cli", train),
        Case("wm-control-export deploy=nonexistent", group, "nonexistent",
             cli("apps.export", lambda: f"checkpoint={fx.run_dir}", out, "deploy=nonexistent"), "cli", export),
        Case("wm-control-export of a folder without a checkpoint", group, "no-such-run",
             cli("apps.export", lambda: f"checkpoint={fx.workdir / 'no-such-run'}", out), "cli", export),
        Case("wm-control-export of a checkpoint without a recorded contract", group, "migrate_checkpoint",
             cli("apps.export", lambda: f"checkpoint={without_contract()}", out), "cli", export),
        Case("wm-control-train resume of a model-only copy", group, "model-only",
             cli("apps.train", lambda: f"resume={fx.copy(SHIPPED, 'cli-model-only')}", "train.steps=80"), "cli",
             train),
        Case("wm-control-train task.name=fr3-fly", group, "fr3-fly",
             cli("apps.train", "task.name=fr3-fly", lambda: f"run_dir={fx.workdir / 'cli-fly'}",
                 "train.progress=false"), "cli", train),
    ]  # fmt: skip


def env_cases(fx: Fixtures) -> list[Case]:
    """Bad actions and settings given to the simulated envs."""

    def step(action: Any, reset: bool = True) -> Callable[[], Any]:
        def run() -> Any:
            env = sim.make("fr3-reach")
            try:
                if reset:
                    env.reset(seed=0)
                return env.step(action)
            finally:
                env.close()

        return run

    def make(name: str, **kwargs: Any) -> Callable[[], Any]:
        def run() -> Any:
            env = sim.make(name, **kwargs)
            env.close()
            return env

        return run

    nan = np.zeros(7)
    nan[4] = np.nan
    group = "envs"
    return [
        Case("fr3-reach step with a NaN action", group, "action", step(nan)),
        Case("fr3-reach step with action 1.5", group, "action[0]", step(np.full(7, 1.5))),
        Case("fr3-reach step with an action of shape (6,)", group, "action has shape (6,)", step(np.zeros(6))),
        Case("fr3-reach step with an integer action", group, "dtype", step(np.zeros(7, dtype=np.int64))),
        Case("fr3-reach step before reset", group, "reset()", step(np.zeros(7), reset=False)),
        Case("unknown task name 'fr3-fly'", group, "fr3-fly", make("fr3-fly")),
        Case("fr3-reach env dt=0.0155 (not a whole number of servo periods)", group, "dt",
             make("fr3-reach", env={"dt": 0.0155})),
        Case("fr3-reach env dt=0.5 (out of range)", group, "env.dt", make("fr3-reach", env={"dt": 0.5})),
        Case("fr3-reach env chunk.servo_period=0.002", group, "servo_period",
             make("fr3-reach", env={"chunk": {"servo_period": 0.002}})),
        Case("fr3-reach env unknown key 'dtt'", group, "dtt", make("fr3-reach", env={"dtt": 0.02})),
    ]  # fmt: skip


def chunk_cases(fx: Fixtures, quick: bool) -> list[Case]:
    """Bad command states and actions given to the chunk generator, and the limit fuzz."""
    generator = ChunkGenerator(FR3, CHUNKS, TICK)
    rest = generator.rest(START_Q)

    def generate(state: CommandState, action: Any) -> Callable[[], Any]:
        return lambda: generator.generate(state, action)

    nan_q = rest.q.copy()
    nan_q[1] = np.nan
    inf_dq = rest.dq.copy()
    inf_dq[3] = np.inf
    fast = rest.dq.copy()
    fast[0] = 10.0
    over = np.zeros(7)
    over[2] = 1.0 + 2e-6
    group = "chunk generator"
    sequences = 300 if quick else 20_000
    families = ("uniform", "bang-bang", "limit-seeking")
    per_family = [sequences // 3 + (1 if i < sequences % 3 else 0) for i in range(3)]
    return [
        Case("command state with a NaN position", group, "state.q", generate(rest._replace(q=nan_q), np.zeros(7))),
        Case("command state with an inf velocity", group, "state.dq", generate(rest._replace(dq=inf_dq), np.zeros(7))),
        Case("command state faster than the robot (10 rad/s)", group, "state.dq[0]",
             generate(rest._replace(dq=fast), np.zeros(7))),
        Case("command state of 6 joints", group, "state.q", generate(rest._replace(q=rest.q[:6]), np.zeros(7))),
        Case("action 1 + 2e-6 (the message shows the value)", group, "1.000002", generate(rest, over)),
        Case("action NaN", group, "action", generate(rest, np.full(7, np.nan))),
        *(
            Case(f"fuzz: {n:,} {family} action sequences x 50 ticks, judged by the reflex monitor", group, "",
                 partial(fuzz_chunks, family, n, 50, i), expect="check")
            for i, (family, n) in enumerate(zip(families, per_family, strict=True))
        ),
    ]  # fmt: skip


def conformance_cases(fx: Fixtures) -> list[Case]:
    """gymnasium's own env checker on an FR3 task and a DMC task."""
    return [
        Case(f"gymnasium check_env on {task}", "conformance", "", partial(check_conformance, task), "check")
        for task in ("fr3-reach", "dmc/cartpole-swingup")
    ]


# --- the checks behind "check" cases -------------------------------------------------------------------
def margin_box() -> tuple[np.ndarray, np.ndarray]:
    """The joint range shrunk by the chunk generator's position margin [rad]: what every knot keeps."""
    lim = FR3.limits
    return lim.q_min + CHUNKS.position_margin, lim.q_max - CHUNKS.position_margin


def check_conformance(task: str) -> tuple[bool, str]:
    """Run ``gymnasium.utils.env_checker.check_env`` on ``sim.make(task)``: ``(passed, detail)``."""
    from gymnasium.utils.env_checker import check_env

    env = sim.make(task)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            check_env(env)
    except Exception as exc:  # the checker reports a failure by raising
        return False, f"check_env failed: {type(exc).__name__}: {exc}"
    finally:
        env.close()
    kinds = sorted({str(w.message).replace("\x1b[33m", "").replace("\x1b[0m", "").split(".")[0] for w in caught})
    return True, f"check_env passed ({len(caught)} warnings: {'; '.join(kinds) or 'none'})"


def fuzz_actions(family: str, rng: np.random.Generator, ticks: int) -> tuple[np.ndarray, np.ndarray]:
    """A start pose ``(7,)`` [rad] and ``ticks`` actions ``(ticks, 7)`` of one fuzz family.

    uniform: uniform in [-1, 1]. bang-bang: +-1 per joint, each flipping with probability 0.2 per
    tick. limit-seeking: start within 0.3 rad of the position margin and drive each joint into its
    nearer limit at full speed (a few ticks reversed), some actions just inside the rounding
    tolerance above 1.
    """
    lo, hi = margin_box()
    q0 = START_Q.copy() if rng.random() < 0.5 else rng.uniform(lo, hi)
    if family == "uniform":
        return q0, rng.uniform(-1.0, 1.0, (ticks, 7))
    if family == "bang-bang":
        signs = rng.choice([-1.0, 1.0], 7)
        actions = np.empty((ticks, 7))
        for k in range(ticks):
            signs = np.where(rng.random(7) < 0.2, -signs, signs)
            actions[k] = signs
        return q0, actions
    if family == "limit-seeking":
        towards = rng.choice([-1.0, 1.0], 7)
        distance = rng.uniform(0.0, 0.3, 7)
        q0 = np.clip(np.where(towards > 0, hi - distance, lo + distance), lo, hi)
        actions = np.repeat(towards[None], ticks, axis=0)
        actions[rng.random((ticks, 7)) < 0.05] *= -1.0
        actions[rng.random((ticks, 7)) < 0.1] *= 1.0 + 5e-7
        return q0, actions
    raise HarnessError(f"unknown fuzz family {family!r}")


def fuzz_chunks(family: str, sequences: int, ticks: int, seed: int) -> tuple[bool, str]:
    """Random action sequences through the fr3-reach chunk generator, judged as the simulated robot
    would: ``(no violation, detail)``.

    Each sequence starts at rest. The command a 1 kHz layer executes is, each tick, the cubic Hermite
    spline from the command state to the chunk's first knot, sampled every millisecond (the next tick
    starts from that knot); the simulator's ``ReflexMonitor`` checks its velocity (position-dependent),
    acceleration and jerk. Every knot of every chunk, and every executed sample, must keep the
    generator's position margin (up to ``MARGIN_TOLERANCE``). The detail also gives the largest share
    of each limit the executed commands used (``limit_use``), which says how hard the fuzz pushed.
    """
    from sim.monitor import ReflexMonitor

    generator = ChunkGenerator(FR3, CHUNKS, TICK)
    monitor = ReflexMonitor(FR3, SERVO)
    rng = np.random.default_rng(seed)
    lo, hi = margin_box()
    per_tick = round(TICK / SERVO)
    times = SERVO * np.arange(1, ticks * per_tick + 1)
    bad, first, closest = 0, "", math.inf
    peak = np.zeros(3)  # largest share of the velocity, acceleration and jerk limits used
    for k in range(sequences):
        q0, actions = fuzz_actions(family, rng, ticks)
        state = generator.rest(q0)
        knots_q, knots_dq = np.empty((ticks, 7)), np.empty((ticks, 7))
        slack = math.inf
        for i, action in enumerate(actions):
            result = generator.generate(state, action)
            positions = result.chunk.positions
            slack = min(slack, float(np.min(positions - lo)), float(np.min(hi - positions)))
            state = result.next_state
            knots_q[i], knots_dq[i] = state.q, state.dq
        executed = sample_hermite(q0, np.zeros(7), TrajectoryChunk(knots_q, knots_dq, TICK), times).q
        slack = min(slack, float(np.min(executed - lo)), float(np.min(hi - executed)))
        monitor.reset(q0)
        reflex = monitor.check_command(executed, 0.0)
        peak = np.maximum(peak, limit_use(q0, executed))
        closest = min(closest, slack)
        if reflex is not None or slack < -MARGIN_TOLERANCE:
            bad += 1
            if not first:
                why = reflex.message if reflex is not None else f"position margin crossed by {-slack:.3g} rad"
                first = f"; first (sequence {k}, seed {seed}): {why}"
    detail = (
        f"{sequences} sequences x {ticks} ticks: {bad} with a violation; peak use of the velocity / "
        f"acceleration / jerk limits {peak[0]:.3f} / {peak[1]:.3f} / {peak[2]:.3f}; closest approach to the "
        f"{CHUNKS.position_margin} rad position margin: {closest:.3g} rad{first}"
    )
    return bad == 0, detail


def limit_use(q0: np.ndarray, executed: np.ndarray) -> np.ndarray:
    """The largest share of FR3's velocity (position-dependent), acceleration and jerk limits that
    1 kHz positions ``executed (m, 7)`` [rad] starting at rest at ``q0`` use, differentiated as the
    ``ReflexMonitor`` does: ``(3,)``, 1.0 = at the limit.
    """
    lim = FR3.limits
    P = np.concatenate([np.repeat(q0[None], 3, axis=0), executed])
    V = np.diff(P, axis=0) / SERVO
    A = np.diff(V, axis=0) / SERVO
    J = np.diff(A, axis=0) / SERVO
    lo, hi = velocity_bounds(FR3, P[2:-1])
    v = V[2:]
    velocity = np.where(v >= 0.0, v / np.maximum(hi, 1e-12), v / np.minimum(lo, -1e-12))
    return np.array([velocity.max(), (np.abs(A[1:]) / lim.ddq_max).max(), (np.abs(J) / lim.dddq_max).max()])


# --- the catalogue -------------------------------------------------------------------------------------
def catalogue(fx: Fixtures, quick: bool) -> Iterator[tuple[str, list[Case]]]:
    """The groups in order, each built when reached (its fixtures are then built on first use)."""
    yield "exports", export_cases(fx)
    yield "contract vs controller", contract_cases(fx)
    yield "loop inputs", loop_input_cases(fx)
    yield "backend faults", backend_fault_cases(fx)
    yield "checkpoints", checkpoint_cases(fx)
    if not quick:
        yield "cli", cli_cases(fx)
    yield "envs", env_cases(fx)
    yield "chunk generator", chunk_cases(fx, quick)
    yield "conformance", conformance_cases(fx)


def run_catalogue(quick: bool = False, workdir: str | Path | None = None) -> dict[str, Any]:
    """Run every case (``quick``: without the command-line cases, with a few hundred fuzz sequences)
    in ``workdir`` (a temporary folder when ``None``) and return the payload of ``robustness.json``.
    """
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="wm-robustness-") as tmp:
            return run_catalogue(quick, tmp)
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    fx = Fixtures(workdir)
    t0 = time.perf_counter()
    results: list[dict[str, str]] = []
    for group, cases in catalogue(fx, quick):
        g0 = time.perf_counter()
        for case in cases:
            result = classify(case, workdir)
            results.append(result)
            if result["outcome"] not in (REFUSED, HELD):
                progress(f"  {result['outcome']}: {case.name}: {result['detail']}")
        tally = Counter(r["outcome"] for r in results if r["group"] == group)
        progress(f"{group}: {len(cases)} cases in {time.perf_counter() - g0:.1f} s ({dict(tally)})")
    counts = Counter(r["outcome"] for r in results)
    command = "python bench/robustness.py" + (" --quick" if quick else "")
    return {
        "command": command,
        "quick": quick,
        "machine": machine_info(),
        "cases": len(results),
        **{key: counts.get(outcome, 0) for outcome, key in COUNT_KEYS.items()},
        "wall_s": round(time.perf_counter() - t0, 1),
        "results": results,
    }


def main() -> None:
    """Command line."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fast subset: no CLI cases, a few hundred fuzz sequences")
    ap.add_argument("--workdir", default=None, help="keep the corrupted copies here (default: a temporary folder)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/results alone")
    args = ap.parse_args()
    with contextlib.redirect_stdout(sys.stderr):  # anything the code under test prints is progress
        payload = run_catalogue(args.quick, args.workdir)
    if args.no_write:
        print(json.dumps(payload, indent=2))
    else:
        write_result(RESULT_FILE, payload)
    failed = payload["silently_accepted"] + payload["raw_tracebacks"]
    progress(
        f"{payload['cases']} cases: {payload['refused_with_clear_error']} refused, {payload['held_safely']} held, "
        f"{payload['silently_accepted']} silently accepted, {payload['raw_tracebacks']} raw tracebacks "
        f"in {payload['wall_s']} s"
    )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
