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
