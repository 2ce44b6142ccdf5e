"""Record ROS 2 topics to MCAP, as ``ros2 bag record -s mcap`` would, without a ROS install.

``Recorder`` subscribes to each topic with ``raw=True`` (the serialized CDR bytes, not decoded) and
writes them with the maintained ``rosbags`` writer into a rosbag2 folder (``metadata.yaml`` plus one
``.mcap`` file), which ``ros2 bag play``/``info``, Foxglove and ``rosbags`` read. Messages are
stamped with their receive time. The demo records the joint states, goals, commands and
``/diagnostics``; ``apps/demo_report.py`` reads the folder back.
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wm_control.errors import ConfigError


@dataclass(frozen=True)
class Topic:
    """A topic to record: name, type (``pkg/msg/Type``) and whether its publisher latches (goals)."""

    name: str
    msgtype: str
    latched: bool = False


def message_class(msgtype: str) -> Any:
    """The rclpy message class of ``pkg/msg/Type`` (``ConfigError`` when its package is not installed)."""
    pkg, kind, name = msgtype.split("/")
    try:
        return getattr(importlib.import_module(f"{pkg}.{kind}"), name)
    except (ImportError, AttributeError):
        package = "ros-jazzy-" + pkg.replace("_", "-")
        raise ConfigError(f"message type {msgtype}: not installed (pip package {package})") from None


class Recorder:
    """Writes ``topics`` as they arrive at ``node`` into the rosbag2 folder ``path`` (MCAP storage).

    Callbacks run on the node's executor thread; ``latest`` (the newest raw message per topic) and
    ``counts`` may be read from another thread. ``close`` finishes the file; a recording that is not
    closed (killed process) lacks the MCAP footer, which ``ros2 bag reindex`` repairs.

    Raises:
        ConfigError: ``path`` exists already, or a message package is missing.
    """

    def __init__(self, node: Any, path: str | Path, topics: list[Topic]) -> None:
        from rclpy.qos import DurabilityPolicy, QoSProfile
        from rosbags.rosbag2 import StoragePlugin, Writer
        from rosbags.typesys import Stores, get_typestore

        self.path = Path(path)
        if self.path.exists():
            raise ConfigError(f"recording {self.path}: exists already; give a new folder")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        store = get_typestore(Stores.ROS2_JAZZY)
        self._writer = Writer(self.path, version=9, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        self._lock = threading.Lock()
        self._clock = node.get_clock()
        self.latest: dict[str, bytes] = {}
        self.counts: dict[str, int] = {t.name: 0 for t in topics}
        self._closed = False
        for topic in topics:
            cls = message_class(topic.msgtype)
            conn = self._writer.add_connection(topic.name, topic.msgtype, typestore=store)
            qos = QoSProfile(depth=100)
            if topic.latched:
                qos = QoSProfile(depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL)
            node.create_subscription(cls, topic.name, self._callback(topic.name, conn), qos, raw=True)

    def _callback(self, name: str, conn: Any) -> Any:
        def on_message(data: bytes) -> None:
            with self._lock:
                if self._closed:
                    return
                self._writer.write(conn, self._clock.now().nanoseconds, data)
                self.latest[name] = data
                self.counts[name] += 1

        return on_message

    def close(self) -> None:
        """Finish the recording (idempotent)."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._writer.close()
