"""Start the kernel's cgroup-migration grace period early, in the background.

Moving a process between cgroups takes the kernel's cgroup_threadgroup_rwsem for writing,
and the first writer after a quiet spell waits for an RCU grace period (up to a scheduler
tick per busy CPU: ~10 ms on a loaded host). Writers that follow within about one grace
period of the last one pass straight through. `start()` has a thread move this process
into the cgroup it is already in (a no-op move), and repeat that every few milliseconds,
while the runtime goes on forking and the init prepares its rootfs, so that the container's
own join finds the way open; `stop()` ends it once the join is done (and it ends by itself
after a fraction of a second). Call it after the container's cgroup directories exist: a
move holds the cgroup mutex while it waits for the grace period, and mkdir needs that mutex.

Nothing here may change where the runtime lives: the move is skipped unless the cgroup
path read from /proc/self/cgroup maps onto a mounted hierarchy, and every error is ignored.
"""

from __future__ import annotations

import os


def own_procs_file() -> str | None:
    """The cgroup.procs file of this process's own cgroup in one mounted hierarchy, or None."""
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
        with open("/proc/self/mountinfo") as f:
            mounts = f.read().splitlines()
    except OSError:
        return None
    own = {}
    for line in lines:
        _, controllers, path = line.split(":", 2)
        own[controllers] = path
    for mount in mounts:
        fields = mount.split()
        sep = fields.index("-")
        fstype, root, mountpoint = fields[sep + 1], fields[3], fields[4]
        if fstype == "cgroup2":
            found = own.get("")
        elif fstype == "cgroup":
            options = set(fields[sep + 3].split(","))
            found = next((p for c, p in own.items() if c and set(c.split(",")) <= options), None)
        else:
            continue
        if found is None or not (found == root or found.startswith(root.rstrip("/") + "/")):
            continue
        procs = os.path.join(mountpoint + found[len(root.rstrip("/")):], "cgroup.procs")
        if os.path.exists(procs):
            return procs
    return None


INTERVAL = 0.002  # well inside one grace period
MAX_MOVES = 150
_running = False


def _keep_moving(procs: str) -> None:
    global _running
    import time

    pid = str(os.getpid()).encode()
    try:
        fd = os.open(procs, os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        _running = False
        return
    try:
        for _ in range(MAX_MOVES):
            os.write(fd, pid)
            if not _running:
                break
            time.sleep(INTERVAL)
    except OSError:
        pass
    finally:
        _running = False
        os.close(fd)


def start() -> None:
    """Begin no-op cgroup moves of this process in a background thread (see the module doc)."""
    global _running
    import _thread

    procs = own_procs_file()
    if procs is not None and not _running:
        _running = True
        _thread.start_new_thread(_keep_moving, (procs,))


def stop() -> None:
    """End the moves (after the one under way, if any)."""
    global _running
    _running = False
