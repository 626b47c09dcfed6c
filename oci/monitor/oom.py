"""OOM kills of a container, counted by its memory cgroup: `oom_kill N` in memory.events (cgroup v2)
or memory.oom_control (cgroup v1, Linux 4.13+). The monitor reads the counter when the container
starts and when it exits; a larger count means the kernel's OOM killer took a process of it."""

from __future__ import annotations

import os

V1_MEMORY = "/sys/fs/cgroup/memory"
V2_MOUNTS = ("/sys/fs/cgroup", "/sys/fs/cgroup/unified")


def memory_cgroup(pid: int) -> str:
    """The folder of `pid`'s memory cgroup as this process sees it ("" if it has none or is gone)."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return ""
    unified = ""
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return V1_MEMORY + path
        if controllers == "":
            unified = path
    for mount in V2_MOUNTS:
        folder = mount + unified
        if unified and os.path.exists(os.path.join(folder, "memory.events")):
            return folder
    return ""


def oom_kills(folder: str) -> int | None:
    """The cgroup's OOM kill count, None if it cannot be read."""
    if not folder:
        return None
    for name in ("memory.events", "memory.oom_control"):
        try:
            with open(os.path.join(folder, name)) as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        except (OSError, ValueError):
            continue
    return None
