"""Assemble MuJoCo models from the asset files: the FR3 arm, optionally the Franka Hand, in the
task scene (table, target marker, cameras) or alone.
"""

from __future__ import annotations

from pathlib import Path

import mujoco

__all__ = ["ASSETS", "ARM_JOINTS", "build_model"]

ASSETS = Path(__file__).parent / "assets"
ARM_JOINTS = tuple(f"fr3_joint{i}" for i in range(1, 8))


def build_model(hand: bool = True, scene: bool = True) -> mujoco.MjModel:
    """Compile the FR3 model.

    Args:
        hand: attach the Franka Hand at the flange (TCP site ``fr3_hand_tcp``, actuator ``fr3_hand_gripper``);
            without it the ``fr3_flange`` site is the tool point.
        scene: place the arm on the table of ``scene.xml`` (with the ``target`` mocap marker and the
            ``front`` / ``side`` cameras); otherwise the arm alone, base at the origin.

    Returns:
        The compiled model. The arm's joints, dofs and actuators come first, in ``fr3_joint1..7`` order.
        Its timestep (the servo period of the simulated 1 kHz layer) and integrator are ``fr3.xml``'s.
    """
    arm = mujoco.MjSpec.from_file(str(ASSETS / "fr3.xml"))
    if hand:
        hand_spec = mujoco.MjSpec.from_file(str(ASSETS / "franka_hand.xml"))
        arm.body("flange").add_frame().attach_body(hand_spec.body("base"), "hand_", "")
    if scene:
        world = mujoco.MjSpec.from_file(str(ASSETS / "scene.xml"))
        mount = world.frame("robot_mount")
    else:
        world = mujoco.MjSpec()
        world.compiler.autolimits = True
        mount = world.worldbody.add_frame()
    world.option.timestep = arm.option.timestep
    world.option.integrator = arm.option.integrator
    mount.attach_body(arm.body("link0"), "fr3_", "")
    return world.compile()
