"""Add the control contract to a checkpoint written before contracts were recorded at training time
(checkpoint format 1), once, and rewrite it in the current format (with its file and state hashes).

    python scripts/migrate_checkpoint.py models/fr3-reach --layout fr3-reach-v4

A checkpoint of today records, when training starts, what its model learns to control: robot,
joint names, ``dt``, observation layout with units, action scaling and chunk shaping, goal space.
An older one does not, so this script rebuilds that contract from the checkpoint's own task config
with today's code. That is only right if today's task still builds what the model was trained on,
which the script cannot see in the weights beyond the observation and action sizes; so you state the
observation layout the model was trained with (``--layout``, e.g. from the run's git commit) and the
script refuses when today's task builds another. Run it once per checkpoint; a checkpoint that
already records a contract is left alone. The folder is replaced atomically.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
from pathlib import Path

from apps.common import build_agent, env_factory
from sim.contract import control_contract
from wm_control.errors import ModelContractError, WmControlError
from wm_control.training.checkpoint import load_checkpoint, save_checkpoint


def migrate(path: Path, layout: str) -> str:
    """Record the contract in the checkpoint at ``path``; returns what was done."""
    ckpt = load_checkpoint(path)
    if ckpt.contract is not None:
        return f"{ckpt.path} already records its control contract (observation {ckpt.contract['observation']['name']})"
    env = env_factory(ckpt.config["task"])(False)
    contract = control_contract(env)
    if contract.observation.get("name") != layout:
        raise ModelContractError(
            f"--layout {layout}: today's {ckpt.config['task']['name']!r} task builds observation layout "
            f"{contract.observation.get('name')!r}; the checkpoint cannot be described by today's code"
        )
    agent = build_agent(ckpt.config, env)  # sizes: the weights must fit today's observation and action
    agent.load_state(ckpt.tensors, ckpt.state["agent"])
    env.close()
    state = dict(ckpt.state)
    state["contract"] = contract.to_dict()
    stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    state["contract_migrated"] = f"rebuilt from the task config by scripts/migrate_checkpoint.py on {stamp}"
    writer = None if ckpt.model_only else (lambda target: shutil.copyfile(ckpt.buffer_path, target))
    save_checkpoint(ckpt.path.parent, ckpt.path.name, ckpt.tensors, state, writer, update_latest=False)
    return f"{ckpt.path}: recorded the {contract.observation['name']} contract and rewrote it in the current format"


def main() -> None:
    """Console entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="checkpoint folder (or a model-only copy such as models/x)")
    parser.add_argument("--layout", required=True, help="observation layout the model was trained with")
    args = parser.parse_args()
    try:
        print(migrate(args.checkpoint, args.layout))
    except WmControlError as exc:
        print(f"migrate_checkpoint: error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
