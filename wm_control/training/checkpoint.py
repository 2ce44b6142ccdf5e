"""Checkpoints that resume exactly, never unpickle code, and refuse corruption with one clear line.

A checkpoint is a directory written under a temporary name and renamed into place:

- ``weights.safetensors``: model weights, optimiser moments, RNG states (tensors);
- ``buffer.npz``: the replay buffer (``numpy.load(allow_pickle=False)``);
- ``state.json``: the run config and its hash, the control contract (when the trainer has one), the
  agent's optimiser hyperparameters, the trainer's counters and numpy RNG state, library versions and
  (format 2) the sha256 of each file above (``files``) and of the rest of itself (``state_sha256``).

``load_checkpoint`` checks the state hash, then the file hashes, before decoding any tensor, so a
truncated, corrupted or edited checkpoint raises ``CheckpointError`` naming the file. Format-1
checkpoints (no hashes) still load; their decode errors are refused the same way. ``<run>/checkpoints/
latest`` names the newest complete checkpoint. ``save_model_only`` writes a model-only copy (weights
and state, no optimiser moments, no buffer): enough to evaluate, export and deploy, small enough to
ship in a repository, and refused by ``resume``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from wm_control.config import config_hash
from wm_control.errors import CheckpointError, ConfigError

__all__ = [
    "CHECKPOINT_FORMAT",
    "Checkpoint",
    "TrainerState",
    "config_differences",
    "latest_checkpoint",
    "load_checkpoint",
    "plain_json",
    "save_checkpoint",
    "save_model_only",
    "training_state",
]

CHECKPOINT_FORMAT = 2
_READABLE = (1, 2)
_STATE, _WEIGHTS, _BUFFER = "state.json", "weights.safetensors", "buffer.npz"
_RESERVED = ("format", "config_hash", "files", "state_sha256")  # written by save_checkpoint only


@dataclasses.dataclass(frozen=True)
class TrainerState:
    """The trainer's counters and numpy RNG state, as a checkpoint stores them.

    Attributes:
        step: env steps taken. episode: episodes finished.
        next_eval / next_checkpoint: env step of the next evaluation / periodic checkpoint (``math.inf``: none).
        elapsed_s: training wall time so far [s].
        rng: ``numpy.random.Generator.bit_generator.state`` of the trainer's generator.
    """

    step: int
    episode: int
    next_eval: float
    next_checkpoint: float
    elapsed_s: float
    rng: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``state.json`` (``math.inf`` is stored as ``null``)."""
        out = dataclasses.asdict(self)
        for key in ("next_eval", "next_checkpoint"):
            out[key] = None if math.isinf(out[key]) else int(out[key])
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str | os.PathLike[str]) -> TrainerState:
        """Parse ``to_dict`` output; raises ``CheckpointError`` naming ``where`` when it is malformed."""
        try:
            unset = lambda v: math.inf if v is None else _count(v)  # noqa: E731
            return cls(
                _count(data["step"]),
                _count(data["episode"]),
                unset(data["next_eval"]),
                unset(data["next_checkpoint"]),
                float(data["elapsed_s"]),
                dict(data["rng"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(
                f"checkpoint {where} has a malformed trainer state ({type(exc).__name__}: {_one_line(exc)})"
            ) from None


def training_state(
    config: dict[str, Any], agent_meta: dict[str, Any], trainer: TrainerState, contract: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The JSON state of a training checkpoint (``save_checkpoint`` adds the format and the hashes).

    Args:
        config: plain-data config of the whole run.
        agent_meta: ``TDMPC2.state_meta()`` (optimiser hyperparameters, scale, update count).
        trainer: counters and RNG state.
        contract: the control contract the model is trained under; stored as ``contract`` when given.
    """
    state: dict[str, Any] = {"config": config}
    if contract is not None:
        state["contract"] = contract
    state.update(agent=agent_meta, trainer=trainer.to_dict())
    state["versions"] = {"torch": torch.__version__, "numpy": np.__version__}
    return state


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: tensors, JSON state, and the path of its buffer file."""

    path: Path
    tensors: dict[str, torch.Tensor]
    state: dict[str, Any]

    @property
    def buffer_path(self) -> Path:
        """The replay buffer file."""
        return self.path / _BUFFER

    @property
    def config(self) -> dict[str, Any]:
        """The run config stored with the checkpoint."""
        return self.state["config"]

    @property
    def contract(self) -> dict[str, Any] | None:
        """The control contract the model was trained under, or None when the checkpoint has none."""
        return self.state.get("contract")

    @property
    def model_only(self) -> bool:
        """Whether this is a model-only copy (``save_model_only``): no optimiser state, no buffer."""
        return bool(self.state.get("model_only", False))

    @property
    def trainer_state(self) -> TrainerState:
        """The trainer's counters and RNG state (``CheckpointError`` when malformed)."""
        return TrainerState.from_dict(self.state.get("trainer"), self.path / _STATE)


def save_checkpoint(
    root: str | os.PathLike[str],
    name: str,
    tensors: dict[str, torch.Tensor],
    state: dict[str, Any],
    buffer_writer: Any | None = None,
    update_latest: bool = True,
) -> Path:
    """Write checkpoint ``root/name`` atomically and (``update_latest``) point ``root/latest`` at it.

    ``state`` must contain ``config`` (plain data); its ``format``, ``config_hash``, ``files`` and
    ``state_sha256`` are replaced by the ones written here. ``buffer_writer(path)`` writes the buffer
    file; it is required unless ``state["model_only"]``. Returns the checkpoint folder.
    """
    if buffer_writer is None and not state.get("model_only", False):
        raise ValueError("save_checkpoint: a checkpoint that is not model-only needs a buffer_writer")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / name
    tmp = root / f".{name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp / _WEIGHTS))
    files = {_WEIGHTS: _sha256_file(tmp / _WEIGHTS)}
    if buffer_writer is not None:
        buffer_writer(tmp / _BUFFER)
        files[_BUFFER] = _sha256_file(tmp / _BUFFER)
    body = {k: v for k, v in state.items() if k not in _RESERVED}
    # Hash the data as it reads back (tuples and arrays as lists), or no load could verify it.
    payload = plain_json({"format": CHECKPOINT_FORMAT, "config_hash": config_hash(state["config"]), **body})
    payload["files"] = files
    payload["state_sha256"] = _state_sha256(payload)
    (tmp / _STATE).write_text(json.dumps(payload, indent=1))
    _fsync_dir(tmp)
    if final.exists():
        old = root / f".{name}.old"
        if old.exists():
            shutil.rmtree(old)
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)
    if update_latest:
        latest_tmp = root / ".latest.tmp"
        latest_tmp.write_text(name + "\n")
        os.replace(latest_tmp, root / "latest")
    return final


def latest_checkpoint(root: str | os.PathLike[str]) -> Path | None:
    """The newest checkpoint under ``root`` (a run's ``checkpoints`` folder), or None when there is none.

    Raises:
        CheckpointError: ``root/latest`` is unreadable or names a folder that is gone or lacks its state
            (checkpoints are renamed into place complete, so that folder was damaged after it was written).
    """
    pointer = Path(root) / "latest"
    if not pointer.is_file():
        return None
    try:
        name = pointer.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"checkpoint pointer {pointer} cannot be read ({_one_line(exc)})") from None
    path = Path(root) / name
    if not name or not (path / _STATE).is_file():
        raise CheckpointError(f"checkpoint {path / _STATE} (named by {pointer}) is missing")
    return path


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Load and verify a checkpoint directory (or a run directory / its ``checkpoints`` folder: the latest).

    Raises:
        ConfigError: nothing at ``path`` looks like a checkpoint.
        CheckpointError: a file of the checkpoint is missing, unreadable, truncated, corrupted or was
            modified after it was written; the one-line message names the file.
    """
    path = Path(path)
    if not (path / _STATE).exists():
        for candidate in (path, path / "checkpoints"):
            found = latest_checkpoint(candidate)
            if found is not None:
                path = found
                break
    state_file = path / _STATE
    if not state_file.exists():
        if (path / _WEIGHTS).exists():
            raise CheckpointError(f"checkpoint {state_file} is missing (the folder holds weights but no state)")
        raise ConfigError(f"no checkpoint at {path} (expected state.json, or a run folder with checkpoints/latest)")
    state = _read_state(state_file)
    fmt, model_only = state.get("format"), bool(state.get("model_only", False))
    if fmt not in _READABLE:
        raise CheckpointError(f"checkpoint {state_file} has format {fmt!r}; this version reads {_READABLE}")
    if fmt == 1 and ("files" in state or "state_sha256" in state):  # a format-2 state relabelled to skip the hashes
        raise CheckpointError(f"checkpoint {state_file} says format 1 but has format-2 hashes: it was modified")
    if fmt == 2:
        _verify_hashes(path, state, model_only)
    for key in ("config", "agent", "trainer"):
        if not isinstance(state.get(key), dict):
            raise CheckpointError(f"checkpoint {state_file} has no '{key}' object: not a wm-control checkpoint")
    if not isinstance(state.get("contract", {}), dict):
        raise CheckpointError(f"checkpoint {state_file}: 'contract' is not an object")
    if state.get("config_hash") != config_hash(state["config"]):
        raise CheckpointError(f"checkpoint {state_file}: the config does not match config_hash; it was modified")
    if not model_only and not (path / _BUFFER).is_file():
        raise CheckpointError(f"checkpoint {path / _BUFFER} is missing; a resumable checkpoint needs its replay buffer")
    return Checkpoint(path, _read_weights(path / _WEIGHTS), state)


# Tensors a model-only copy keeps besides the model weights (what ``TDMPC2.load_state`` needs).
_MODEL_ONLY_EXTRA = ("plan_state.mean", "generator", "torch_rng")


def save_model_only(ckpt: Checkpoint, out: str | os.PathLike[str]) -> Path:
    """Write a model-only copy of ``ckpt`` into the folder ``out`` (atomically; replaces it).

    Keeps the model weights (online and target), the warm start and the RNG states, and the whole
    ``state.json`` (config, contract, counters) marked ``model_only``, in the current format; drops
    the optimiser moments and the replay buffer.
    """
    out = Path(out)
    tensors = {k: v for k, v in ckpt.tensors.items() if k.startswith("model.") or k in _MODEL_ONLY_EXTRA}
    state = {k: v for k, v in ckpt.state.items() if k not in _RESERVED}
    state["model_only"] = True
    state["source"] = str(ckpt.path)
    out.parent.mkdir(parents=True, exist_ok=True)
    return save_checkpoint(out.parent, out.name, tensors, state, None, update_latest=False)


def config_differences(stored: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two plain-data configs (added/removed keys too)."""
    diffs: list[str] = []
    for key in sorted(set(stored) | set(current)):
        a, b = stored.get(key, "<missing>"), current.get(key, "<missing>")
        name = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += config_differences(a, b, name + ".")
        elif a != b:
            diffs.append(f"{name}: checkpoint {a!r} != requested {b!r}")
    return diffs


def plain_json(data: Any) -> Any:
    """``data`` as it reads back from ``state.json`` (numpy values and paths converted, tuples as lists).

    Raises:
        ConfigError: ``data`` holds a value JSON cannot represent.
    """
    try:
        return json.loads(json.dumps(data, default=_json_default))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"checkpoint state is not plain JSON data: {exc}") from None


def _read_state(state_file: Path) -> dict[str, Any]:
    try:
        text = state_file.read_bytes().decode("utf-8")
        state = json.loads(text)
    except OSError as exc:
        raise CheckpointError(f"checkpoint {state_file} cannot be read ({_one_line(exc)})") from None
    except UnicodeDecodeError as exc:
        raise CheckpointError(
            f"checkpoint {state_file} is not UTF-8 text (byte {exc.start}): binary data, not a wm-control checkpoint"
        ) from None
    except json.JSONDecodeError as exc:
        raise CheckpointError(
            f"checkpoint {state_file} is not valid JSON (line {exc.lineno} column {exc.colno}): "
            "truncated or not a wm-control checkpoint"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {state_file} holds a JSON {type(state).__name__}, not a wm-control state")
    return state


def _verify_hashes(path: Path, state: dict[str, Any], model_only: bool) -> None:
    """Check ``state_sha256``, then the sha256 of each data file, naming the first that does not match."""
    if state.get("state_sha256") != _state_sha256({k: v for k, v in state.items() if k != "state_sha256"}):
        raise CheckpointError(
            f"checkpoint {path / _STATE} does not match its state_sha256: it was modified after it was written"
        )
    files = state["files"] if isinstance(state.get("files"), dict) else {}
    expected = (_WEIGHTS,) if model_only else (_WEIGHTS, _BUFFER)
    for name in expected:
        file = path / name
        if name not in files or not file.is_file():
            raise CheckpointError(f"checkpoint {file} is missing (or not listed in {_STATE})")
        try:
            digest = _sha256_file(file)
        except OSError as exc:
            raise CheckpointError(f"checkpoint {file} cannot be read ({_one_line(exc)})") from None
        if digest != files[name]:
            raise CheckpointError(
                f"checkpoint {file} does not match the sha256 in {_STATE}: it was truncated, corrupted or "
                "modified after it was written"
            )


def _read_weights(file: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(file))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"checkpoint {file} cannot be decoded ({_one_line(exc)}): truncated or not a safetensors file"
        ) from None


def _state_sha256(payload: dict[str, Any]) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _sha256_file(path: Path, chunk_bytes: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:  # in chunks: a replay buffer can be hundreds of MB
        while block := fh.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _count(v: Any) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise ValueError(f"{v!r} is not a non-negative integer")
    return v


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _fsync_dir(path: Path) -> None:
    for f in path.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
