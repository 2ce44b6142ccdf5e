"""Copy the model of a training run into a small, model-only checkpoint (weights + state, no
optimiser moments, no replay buffer) that can be committed, evaluated, exported and deployed.

    python scripts/save_model.py --run runs/fr3-reach/<run> --out models/fr3-reach

``wm-control-eval checkpoint=<out>`` and ``wm-control-export checkpoint=<out>`` read it like any
checkpoint; ``wm-control-train resume=<out>`` refuses it (resume from the run itself). The run's
checkpoint is verified before it is copied (a corrupted one is refused with one error line); the copy
is written in the current checkpoint format, with its own hashes and the run's control contract.
"""

from __future__ import annotations

import argparse
import sys

from wm_control.errors import WmControlError
from wm_control.training.checkpoint import load_checkpoint, save_model_only


def main() -> None:
    """Console entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="run folder or checkpoint folder")
    parser.add_argument("--out", required=True, help="folder to write (replaced if it exists)")
    args = parser.parse_args()
    try:
        ckpt = load_checkpoint(args.run)
        path = save_model_only(ckpt, args.out)
    except WmControlError as exc:
        print(f"save_model: error: {exc}", file=sys.stderr)
        sys.exit(2)
    size = sum(f.stat().st_size for f in path.iterdir())
    step = ckpt.state["trainer"]["step"]
    print(f"wrote {path} ({size / 1e6:.2f} MB): {ckpt.config['task']['name']} step {step} from {ckpt.path}")


if __name__ == "__main__":
    main()
