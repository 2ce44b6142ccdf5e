"""``wm-control-launch``: run a ROS 2 launch file of this package without the ``launch`` package.

    wm-control-launch launch/sim.launch.xml [name:=value ...] [--check | --verify[=SECONDS]]

PyPI has no ``launch`` / ``launch_ros`` wheels, so this reads the XML subset that ``ros2 launch`` reads
for our launch files (``<launch>``, ``<arg name default description>``, ``<node pkg exec name
namespace output on_exit>`` with ``<param from=.../>``, ``<param name value/>``, ``<remap from to/>``;
substitutions ``$(var name)`` and ``$(find-pkg-share wm_control)``) and starts each node as launch_ros
would: ``<exec> --ros-args -r __node:=<name> -r __ns:=<namespace> --params-file <file> -p <k>:=<v>
-r <from>:=<to>``. Anything else in the file is an error naming it, as is an argument the file does
not declare. ``--check`` only checks: every executable and parameter file exists, and every given
parameter is one its node declares (``ros_nodes.NODES``) with a value of the right type and range.
``--verify`` starts the nodes, checks the running graph (``apps.launch_verify``: every given parameter
declared by its node with the given value, every subscribed topic published by someone), prints what
it found, stops the nodes and exits with 0 (all good) or 1; it waits up to SECONDS (default 60) for the
nodes to appear, answer and subscribe.

When a node marked ``on_exit="shutdown"`` ends, the others are stopped (SIGINT, then SIGTERM); Ctrl-C
stops all of them. The exit code is that node's (0 if none is marked).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wm_control.errors import ConfigError

__all__ = ["LaunchNode", "check", "command", "expected_values", "main", "parse", "run", "share_dir", "stop_processes"]

PACKAGE = "wm_control"
VERIFY_TIMEOUT = 60.0  # how long --verify waits for nodes to appear, answer and subscribe [s]
_SUBST = re.compile(r"\$\((var|find-pkg-share) ([^)]+)\)")
_NODE_ATTRS = {"pkg", "exec", "name", "namespace", "output", "on_exit"}


@dataclass
class LaunchNode:
    """One ``<node>``: executable, ROS name and namespace, parameter files, single parameters, remaps."""

    pkg: str
    exec: str
    name: str
    namespace: str = ""
    params_files: list[str] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)
    remaps: list[tuple[str, str]] = field(default_factory=list)
    shutdown_on_exit: bool = False


def share_dir(package: str = PACKAGE) -> Path:
    """The package's share folder: the ament index's (colcon / installed), else this checkout's root."""
    for prefix in filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)):
        candidate = Path(prefix) / "share" / package
        if (candidate / "package.xml").exists():
            return candidate
    root = Path(__file__).resolve().parents[1]
    if (root / "package.xml").exists() and f"<name>{package}</name>" in (root / "package.xml").read_text():
        return root
    raise ConfigError(f"package {package!r} not found (AMENT_PREFIX_PATH={os.environ.get('AMENT_PREFIX_PATH')!r})")


def _substitute(text: str, args: dict[str, str], where: str) -> str:
    def repl(m: re.Match[str]) -> str:
        kind, value = m.group(1), m.group(2).strip()
        if kind == "find-pkg-share":
            return str(share_dir(value))
        if value not in args:
            raise ConfigError(f"{where}: $(var {value}) names no <arg>; declared: {sorted(args)}")
        return args[value]

    return _SUBST.sub(repl, text)


def parse(path: str | Path, given: dict[str, str]) -> list[LaunchNode]:
    """The nodes of launch file ``path`` with the arguments ``given`` (``ConfigError`` names what is wrong)."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise ConfigError(f"{path}: cannot read the launch file ({exc})") from None
    if root.tag != "launch":
        raise ConfigError(f"{path}: the root element is <{root.tag}>; expected <launch>")
    args: dict[str, str] = {}
    declared = [a.get("name", "") for a in root if a.tag == "arg"]
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ConfigError(f"{path}: unknown launch argument(s) {unknown}; valid: {sorted(declared)}")
    nodes = []
    for el in root:
        where = f"{path}:<{el.tag} name={el.get('name')!r}>"
        if el.tag == "arg":
            name = el.get("name")
            if not name:
                raise ConfigError(f"{path}: an <arg> without a name")
            if name in given:
                args[name] = given[name]
            elif el.get("default") is not None:
                args[name] = _substitute(el.get("default", ""), args, where)
            else:
                raise ConfigError(f"{path}: launch argument {name!r} is required ({el.get('description', '')})")
        elif el.tag == "node":
            extra = sorted(set(el.attrib) - _NODE_ATTRS)
            if extra:
                raise ConfigError(f"{where}: unsupported attribute(s) {extra}; this runner reads {sorted(_NODE_ATTRS)}")
            sub = {k: _substitute(v, args, where) for k, v in el.attrib.items()}
            node = LaunchNode(sub["pkg"], sub["exec"], sub.get("name", sub["exec"]), sub.get("namespace", ""))
            node.shutdown_on_exit = sub.get("on_exit") == "shutdown"
            for child in el:
                values = {k: _substitute(v, args, where) for k, v in child.attrib.items()}
                if child.tag == "param" and "from" in values:
                    node.params_files.append(values["from"])
                elif child.tag == "param" and "name" in values and "value" in values:
                    node.params[values["name"]] = values["value"]
                elif child.tag == "remap" and "from" in values and "to" in values:
                    node.remaps.append((values["from"], values["to"]))
                else:
                    raise ConfigError(f"{where}: unsupported <{child.tag} {child.attrib}>")
            nodes.append(node)
        else:
            raise ConfigError(f"{where}: unsupported element <{el.tag}>; this runner reads <arg> and <node>")
    return nodes


def executable(node: LaunchNode) -> str:
    """Where ``ros2 run <pkg> <exec>`` finds it: ``lib/<pkg>/`` of an ament prefix, else ``PATH``."""
    for prefix in filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)):
        candidate = Path(prefix) / "lib" / node.pkg / node.exec
        if candidate.is_file():
            return str(candidate)
    found = shutil.which(
        node.exec, path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    )
    if found is None:
        raise ConfigError(f"node {node.name!r}: executable {node.exec!r} of package {node.pkg!r} not found")
    return found


def command(node: LaunchNode) -> list[str]:
    """The command line launch_ros would run for ``node``."""
    cmd = [executable(node), "--ros-args", "-r", f"__node:={node.name}"]
    if node.namespace:
        cmd += ["-r", f"__ns:={node.namespace if node.namespace.startswith('/') else '/' + node.namespace}"]
    for f in node.params_files:
        cmd += ["--params-file", f]
    for k, v in node.params.items():
        cmd += ["-p", f"{k}:={v if v else repr('')}"]  # an empty value is YAML's empty string
    for a, b in node.remaps:
        cmd += ["-r", f"{a}:={b}"]
    return cmd


def expected_values(node: LaunchNode) -> dict[str, Any]:
    """The parameter values ``node`` is given: its params files in order, then ``<param name value>``
    (parsed as ROS parses ``-p``).

    Raises:
        ConfigError: a params file is missing or malformed.
    """
    import yaml

    from ros_nodes.params import shipped_values

    values: dict[str, Any] = {}
    for f in node.params_files:
        if not Path(f).is_file():
            raise ConfigError(f"node {node.name!r}: parameter file {f} not found")
        values.update(shipped_values(f, node.name))
    values.update({k: yaml.safe_load(v) if v else "" for k, v in node.params.items()})
    return values


def check(nodes: list[LaunchNode]) -> list[str]:
    """What is wrong with ``nodes`` without starting them (empty: nothing): executables, parameter
    files, and every given parameter declared by its node's schema with a valid value.
    """
    from ros_nodes import NODES
    from ros_nodes.params import from_values

    problems = []
    for node in nodes:
        try:
            executable(node)
        except ConfigError as exc:
            problems.append(str(exc))
        if node.exec not in NODES:
            problems.append(f"node {node.name!r}: {node.exec!r} is not one of this package's nodes {sorted(NODES)}")
            continue
        try:
            values = expected_values(node)
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        try:
            from_values(NODES[node.exec], values)
        except ConfigError as exc:
            problems.append(f"node {node.name!r}: {exc}")
    return problems


def run(nodes: list[LaunchNode], grace_s: float = 10.0, verify_s: float | None = None) -> int:
    """Start every node; stop them all when a ``shutdown_on_exit`` node ends or on Ctrl-C. With
    ``verify_s``, check the running graph (within that many seconds), print the outcome and stop:
    the exit code is 0 when nothing is wrong, else 1.
    """
    procs = [(node, subprocess.Popen(command(node), start_new_session=True)) for node in nodes]
    code = 0

    def stop(signum: int, frame: Any) -> None:  # SIGTERM (e.g. timeout, systemd) stops the nodes too
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        if verify_s is not None:
            from apps.launch_verify import verify

            problems, notes = verify(nodes, timeout=verify_s)
            for line in notes:
                print(f"wm-control-launch: note: {line}")
            for line in problems:
                print(f"wm-control-launch: problem: {line}", file=sys.stderr)
            if not problems:
                print(f"wm-control-launch: verified {len(nodes)} running node(s): parameters as given, every "
                      "subscription has a publisher")  # fmt: skip
            return 1 if problems else 0
        reported: set[int] = set()
        while True:
            ended = [(n, p) for n, p in procs if p.poll() is not None]
            for n, p in ended:
                if p.pid not in reported:
                    reported.add(p.pid)
                    print(f"wm-control-launch: {n.name} exited with code {p.returncode}", file=sys.stderr)
            final = [(n, p) for n, p in ended if n.shutdown_on_exit]
            if final:
                code = final[0][1].returncode
                break
            if len(ended) == len(procs):
                break
            time.sleep(0.1)
    except KeyboardInterrupt:
        code = 130
    finally:
        stop_processes([p for _, p in procs], grace_s)
        signal.signal(signal.SIGTERM, previous)
    return code


def stop_processes(procs: list[subprocess.Popen[Any]], grace_s: float = 10.0) -> None:
    """Stop ``procs`` (each started with ``start_new_session=True``) and their children: SIGINT, then
    SIGTERM and SIGKILL to whatever is still running ``grace_s / 2`` later. A second Ctrl-C or SIGTERM
    while the nodes shut down is ignored, so that they can write their files.
    """
    previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    previous_term = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            alive = [p for p in procs if p.poll() is None]
            for p in alive:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, sig)
            deadline = time.monotonic() + grace_s / 2
            while alive and time.monotonic() < deadline:
                alive = [p for p in alive if p.poll() is None]
                time.sleep(0.05)
            if not alive:
                break
    finally:
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous_term)


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    # Started in the background of a non-interactive shell (`nohup ... &`, a script), the runner inherits
    # SIGINT ignored, and an ignored signal stays ignored across exec: Ctrl-C or a caller's SIGINT would
    # reach neither it nor its nodes, and they would be killed later without writing their files.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    argv = sys.argv[1:] if argv is None else argv
    flags = [a for a in argv if a.startswith("--")]
    rest = [a for a in argv if not a.startswith("--")]
    verify_s: float | None = None
    for flag in flags:
        if flag == "--verify" or flag.startswith("--verify="):
            try:
                verify_s = float(flag.partition("=")[2] or VERIFY_TIMEOUT)
            except ValueError:
                verify_s = -1.0
            if not 0.0 < verify_s <= 3600.0:
                print(f"wm-control-launch: error: {flag}: SECONDS must be a number in (0, 3600]", file=sys.stderr)
                sys.exit(2)
    if not rest or {f.partition("=")[0] for f in flags} - {"--check", "--verify"} or len(flags) > 1:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        sys.exit(2)
    path, pairs = rest[0], rest[1:]
    try:
        given = dict(p.split(":=", 1) for p in pairs)
    except ValueError:
        print(f"wm-control-launch: error: arguments are name:=value; got {pairs}", file=sys.stderr)
        sys.exit(2)
    try:
        nodes = parse(path, given)
        problems = check(nodes)
    except ConfigError as exc:
        print(f"wm-control-launch: error: {exc}", file=sys.stderr)
        sys.exit(2)
    if problems:
        for p in problems:
            print(f"wm-control-launch: error: {p}", file=sys.stderr)
        sys.exit(2)
    if "--check" in flags:
        print(f"{path}: {len(nodes)} node(s) check out: {', '.join(n.name for n in nodes)}")
        return
    sys.exit(run(nodes, verify_s=verify_s))


if __name__ == "__main__":
    main()
