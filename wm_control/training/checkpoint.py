"""Checkpoints that resume exactly and never unpickle code.

A checkpoint is a directory written under a temporary name and renamed into place:

- ``weights.safetensors``: model weights, optimiser moments, RNG states (tensors);
- ``state.json``: the run config, its hash, counters, optimiser hyperparameters, the trainer's numpy
  RNG state, library versions;
- ``buffer.npz``: the replay buffer (``numpy.load(allow_pickle=False)``).

``<run>/checkpoints/latest`` names the newest complete checkpoint. ``save_model_only`` writes a
model-only copy (weights and state, no optimiser moments, no buffer): enough to evaluate, export and
deploy, small enough to ship in a repository, and refused by ``resume``.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from wm_control.config import config_hash
from wm_control.errors import ConfigError

__all__ = [
    "CHECKPOINT_FORMAT",
    "Checkpoint",
    "config_differences",
    "latest_checkpoint",
    "load_checkpoint",
    "save_checkpoint",
    "save_model_only",
]

CHECKPOINT_FORMAT = 1


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: tensors, JSON state, and the path of its buffer file."""

    path: Path
    tensors: dict[str, torch.Tensor]
    state: dict[str, Any]

    @property
    def buffer_path(self) -> Path:
        """The replay buffer file."""
        return self.path / "buffer.npz"

    @property
    def config(self) -> dict[str, Any]:
        """The run config stored with the checkpoint."""
        return self.state["config"]

    @property
    def model_only(self) -> bool:
        """Whether this is a model-only copy (``save_model_only``): no optimiser state, no buffer."""
        return bool(self.state.get("model_only", False))


def save_checkpoint(
    root: str | os.PathLike[str],
    name: str,
    tensors: dict[str, torch.Tensor],
    state: dict[str, Any],
    buffer_writer: Any | None = None,
    update_latest: bool = True,
) -> Path:
    """Write checkpoint ``root/name`` atomically and (``update_latest``) point ``root/latest`` at it.

    ``state`` must contain ``config`` (plain data); ``buffer_writer(path)`` writes the buffer file.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / name
    tmp = root / f".{name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    contiguous = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    save_file(contiguous, str(tmp / "weights.safetensors"))
    payload = {"format": CHECKPOINT_FORMAT, "config_hash": config_hash(state["config"]), **state}
    (tmp / "state.json").write_text(json.dumps(payload, indent=1, default=_json_default))
    if buffer_writer is not None:
        buffer_writer(tmp / "buffer.npz")
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
    """The newest complete checkpoint under ``root`` (a run's ``checkpoints`` folder), or None."""
    root = Path(root)
    pointer = root / "latest"
    if not pointer.exists():
        return None
    path = root / pointer.read_text().strip()
    return path if (path / "state.json").exists() else None


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Load a checkpoint directory (or a run directory / its ``checkpoints`` folder: the latest)."""
    path = Path(path)
    for candidate in (path, path / "checkpoints"):
        found = latest_checkpoint(candidate)
        if found is not None and not (path / "state.json").exists():
            path = found
            break
    if not (path / "state.json").exists():
        raise ConfigError(f"no checkpoint at {path} (expected state.json, or a run folder with checkpoints/latest)")
    state = json.loads((path / "state.json").read_text())
    if state.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError(
            f"checkpoint {path} has format {state.get('format')!r}; this version reads {CHECKPOINT_FORMAT}"
        )
    if state.get("config_hash") != config_hash(state["config"]):
        raise ConfigError(f"checkpoint {path}: state.json was edited (config hash mismatch)")
    tensors = load_file(str(path / "weights.safetensors"))
    return Checkpoint(path, tensors, state)


# Tensors a model-only copy keeps besides the model weights (what ``TDMPC2.load_state`` needs).
_MODEL_ONLY_EXTRA = ("plan_state.mean", "generator", "torch_rng")


def save_model_only(ckpt: Checkpoint, out: str | os.PathLike[str]) -> Path:
    """Write a model-only copy of ``ckpt`` into the folder ``out`` (atomically; replaces it).

    Keeps the model weights (online and target), the warm start and the RNG states, and the whole
    ``state.json`` marked ``model_only``; drops the optimiser moments and the replay buffer.
    """
    out = Path(out)
    tensors = {k: v for k, v in ckpt.tensors.items() if k.startswith("model.") or k in _MODEL_ONLY_EXTRA}
    state = {k: v for k, v in ckpt.state.items() if k not in ("format", "config_hash")}
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
