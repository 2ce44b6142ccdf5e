"""Check a started launch file against the running ROS graph (``wm-control-launch ... --verify``).

Once the nodes run, a probe node in the launch runner's process asks each one for the parameters the
launch file gives it (its params files and ``<param name value>``; ``rcl_interfaces/GetParameters``)
and compares the values, and checks that every topic a node subscribes to has a publisher. A value
that differs, a parameter the node does not declare, a node that never appears and a subscription
nobody publishes to are problems, each named. A lifecycle node that is not configured yet subscribes
to nothing; that is reported as a note, not a problem.
"""

from __future__ import annotations

import math
import time
from typing import Any

from apps.launch import LaunchNode, expected_values

__all__ = ["verify"]

# Topics every rclpy node subscribes to itself.
_INFRASTRUCTURE = {"/parameter_events"}


def _full_name(node: LaunchNode) -> tuple[str, str]:
    namespace = "/" + node.namespace.strip("/") if node.namespace.strip("/") else "/"
    return node.name, namespace


def _subscriptions(probe: Any, node: LaunchNode) -> set[str]:
    """The topics ``node`` subscribes to, without the ones every node has."""
    return {topic for topic, _ in probe.get_subscriber_names_and_types_by_node(*_full_name(node))} - _INFRASTRUCTURE


def _same(given: Any, actual: Any) -> bool:
    if isinstance(given, float) or isinstance(actual, float):
        try:
            return math.isclose(float(given), float(actual), rel_tol=1e-12, abs_tol=1e-12)
        except (TypeError, ValueError):
            return False
    return bool(given == actual)


def verify(nodes: list[LaunchNode], timeout: float = 60.0, settle: float = 2.0) -> tuple[list[str], list[str]]:
    """``(problems, notes)`` for the running ``nodes`` (rclpy is initialised and shut down here).

    Args:
        nodes: the launch file's nodes, already started.
        timeout: how long nodes may take to appear, answer and subscribe [s].
        settle: how long the subscriptions must stay the same before they are judged [s].
    """
    import rclpy
    from rclpy.parameter import parameter_value_to_python
    from rclpy.parameter_client import AsyncParameterClient

    rclpy.init()
    probe = rclpy.create_node("wm_control_launch_verify")
    deadline = time.monotonic() + timeout
    problems: list[str] = []
    notes: list[str] = []

    def spin(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            rclpy.spin_once(probe, timeout_sec=0.05)

    try:
        wanted = {_full_name(n) for n in nodes}
        while time.monotonic() < deadline and not wanted <= set(probe.get_node_names_and_namespaces()):
            spin(0.2)
        running = set(probe.get_node_names_and_namespaces())
        up = [n for n in nodes if _full_name(n) in running]
        problems += [f"node {n.name!r} did not appear within {timeout:g} s" for n in nodes if n not in up]
        for node in up:
            name, namespace = _full_name(node)
            path = f"{namespace.rstrip('/')}/{name}"
            expected = expected_values(node)
            client = AsyncParameterClient(probe, path)
            if not client.wait_for_services(timeout_sec=max(0.1, deadline - time.monotonic())):
                problems.append(f"node {node.name!r}: its parameter services did not answer")
                continue
            future = client.get_parameters(list(expected))
            rclpy.spin_until_future_complete(probe, future, timeout_sec=max(0.1, deadline - time.monotonic()))
            if future.result() is None:
                problems.append(f"node {node.name!r}: no answer to get_parameters")
                continue
            for key, value in zip(expected, future.result().values, strict=True):
                actual = parameter_value_to_python(value)
                if actual is None:
                    problems.append(f"node {node.name!r}: parameter {key!r} is given but not declared")
                elif not _same(expected[key], actual):
                    given = f"the launch file gives {expected[key]!r}"
                    problems.append(f"node {node.name!r}: parameter {key!r} is {actual!r}; {given}")
        # Subscriptions appear as nodes configure: judge them once they stopped changing.
        before: dict[str, set[str]] = {}
        stable_since = time.monotonic()
        while True:
            subs = {node.name: _subscriptions(probe, node) for node in up}
            if subs != before:
                before, stable_since = subs, time.monotonic()
            orphans = [(n, t) for n, topics in subs.items() for t in sorted(topics) if probe.count_publishers(t) == 0]
            settled = time.monotonic() - stable_since >= settle
            if (settled and not orphans and all(subs.values())) or time.monotonic() >= deadline:
                break
            spin(0.2)
        problems += [f"node {n!r} subscribes to {t} but nothing publishes it" for n, t in orphans]
        notes += [f"node {n!r} subscribes to nothing yet (a lifecycle node waiting to be configured?)"
                  for n, topics in subs.items() if not topics]  # fmt: skip
    finally:
        probe.destroy_node()
        rclpy.try_shutdown()
    return problems, notes
