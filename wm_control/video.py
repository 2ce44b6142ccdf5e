"""Write RGB frames to an mp4 (H.264 through imageio-ffmpeg), atomically."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wm_control.errors import InputError

__all__ = ["write_video"]


def write_video(path: str | os.PathLike[str], frames: Sequence[np.ndarray], fps: float) -> Path:
    """Encode ``frames`` (each ``(H, W, 3)`` uint8, same size) to ``path``; returns the path.

    The file is written under a temporary name and renamed, so a crash never leaves a truncated video.
    """
    import imageio.v2 as imageio  # lazy: only entry points that record video need it

    if not frames:
        raise InputError("write_video: no frames to write")
    shape = frames[0].shape
    if len(shape) != 3 or shape[2] != 3 or frames[0].dtype != np.uint8:
        raise InputError(f"write_video: frames must be (H, W, 3) uint8; got {shape} {frames[0].dtype}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    # macro_block_size=1 keeps odd frame sizes; yuv420p keeps the file playable everywhere.
    writer: Any = imageio.get_writer(tmp, fps=fps, codec="libx264", macro_block_size=1, pixelformat="yuv420p")
    with writer:
        for frame in frames:
            if frame.shape != shape:
                raise InputError(f"write_video: frame of shape {frame.shape} differs from the first {shape}")
            writer.append_data(frame)
    os.replace(tmp, path)
    return path
