"""runc's `ps` and `events`: the container's processes and its cgroup statistics.

`stats_event` is one object of `events --stats` (runc's shape: type, id, data with cpu, memory,
pids ...); `watch` yields one every interval while the container lives, and an `oom` event
whenever the kernel's OOM killer struck in the container's cgroup since the last look.
"""

from __future__ import annotations

import time

from oci.errors import Conflict, InvalidInput
from oci.runtime.state import Container, StateStore

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterator


def _cgroup(container: Container) -> Any:
    from oci.linux import cgroups

    return cgroups.manager(container.cgroup_path)


def pids(store: StateStore, container_id: str) -> list[int]:
    """The host pids of every process in the container's cgroup."""
    return sorted(_cgroup(store.load(container_id)).pids())


def _live(store: StateStore, container_id: str) -> Container:
    container = store.load(container_id)
    if not container.alive():
        raise Conflict(f"container with id {container_id} is not running")
    return container


def stats_event(store: StateStore, container_id: str) -> dict[str, Any]:
    """One `stats` event of a live container."""
    container = _live(store, container_id)
    return _event(container, _cgroup(container).stats())


def _event(container: Container, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": "stats", "id": container.id,
            "data": {**data, "blkio": {}, "hugetlb": {}, "intel_rdt": {}, "network_interfaces": None}}


def watch(store: StateStore, container_id: str, interval: float) -> Iterator[dict[str, Any]]:
    """Stats events every `interval` seconds (and `oom` events) until the container stops."""
    if interval <= 0:
        raise InvalidInput("duration interval must be greater than 0")
    container = _live(store, container_id)
    cgroup = _cgroup(container)
    oom_kills = cgroup.oom_kills()
    while container.alive():
        data = cgroup.stats()
        kills = cgroup.oom_kills()
        if kills > oom_kills:
            yield {"type": "oom", "id": container.id}
        oom_kills = kills
        yield _event(container, data)
        deadline = time.monotonic() + interval
        while container.alive() and time.monotonic() < deadline:
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))


def ps_table(pids: list[int], argv: list[str]) -> str:
    """The header and the lines of `ps ARGV` whose PID is one of `pids` (runc's `ps`)."""
    import subprocess

    from oci.errors import OciError

    try:
        done = subprocess.run(["ps", *argv], capture_output=True, text=True)
    except OSError as err:
        raise OciError(f"ps: cannot run ps(1): {err.strerror}") from None
    if done.returncode != 0:
        raise OciError(f"ps: ps(1) failed: {(done.stderr or done.stdout).strip()}")
    lines = done.stdout.splitlines()
    header = lines[0].split() if lines else []
    if "PID" not in header:
        raise OciError("ps: couldn't find PID field in ps output")
    column = header.index("PID")
    wanted = {str(pid) for pid in pids}
    kept = [lines[0], *(line for line in lines[1:] if line.split()[column:column + 1] and
                         line.split()[column] in wanted)]
    return "".join(line + "\n" for line in kept)


def parse_interval(text: str) -> float:
    """A Go-style duration (5s, 500ms, 1m30s, 1h) or a number of seconds."""
    import re

    from oci.errors import UsageError

    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
    try:
        return float(text)
    except ValueError:
        pass
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise UsageError(f"--interval: invalid duration {text!r}")
    return sum(float(n) * units[u] for n, u in parts)
