"""What both cgroup versions share: finding the mounted hierarchies, writing files, removal."""

from __future__ import annotations

import errno
import os
import time

from oci.errors import OciError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# What every container may use whatever its rules say (as runc allows them): mknod of any
# node, the default devices, the console and the pseudo-terminals.
DEFAULT_ALLOWED = [
    {"allow": True, "type": "c", "access": "m"}, {"allow": True, "type": "b", "access": "m"},
    *({"allow": True, "type": "c", "major": major, "minor": minor, "access": "rwm"}
      for major, minor in ((1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2), (136, -1))),
]


class CgroupError(OciError):
    """A cgroup could not be created, joined or limited."""


def mounted_hierarchies() -> list[tuple[str, str, set[str]]]:
    """(fstype, mount point, controllers) of every cgroup and cgroup2 mount of this mount namespace."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            fstype, options = fields[sep + 1], fields[sep + 3]
            if fstype not in ("cgroup", "cgroup2"):
                continue
            controllers = {o for o in options.split(",") if o not in ("rw", "ro")} if fstype == "cgroup" else set()
            found.append((fstype, fields[4], controllers))
    return found


def is_cpu_list(text: str) -> bool:
    """Whether `text` is a kernel cpu or memory-node list (cpuset.cpus, cpuset.mems): numbers and
    ascending ranges separated by commas, such as 0-2,4."""
    for part in text.split(","):
        low, dash, high = part.partition("-")
        if not (low.isascii() and low.isdigit()) or (dash and not (high.isascii() and high.isdigit()
                                                                   and int(low) <= int(high))):
            return False
    return True


def write(path: str, value: str) -> None:
    """Write `value` to a cgroup file in one write(2) (os-level: no buffered text file around it)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)
    except OSError as err:
        raise CgroupError(f"cgroup: write {value!r} to {path}: {err.strerror}") from None


def rmdir_retry(path: str, tries: int = 500) -> None:
    """Remove an empty cgroup directory, waiting a little for exiting tasks to leave it (up to ~1 s,
    looking every 2 ms: tasks usually leave within a millisecond or two of their exit)."""
    for _ in range(tries):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as err:
            if err.errno != errno.EBUSY:
                raise CgroupError(f"cgroup: remove {path}: {err.strerror}") from None
            time.sleep(0.002)
    raise CgroupError(f"cgroup: remove {path}: still busy")


def remove_tree(folder: str) -> None:
    """Remove a cgroup and every cgroup the container made below it (systemd or Docker inside it, a
    cgroup namespace with a writable /sys/fs/cgroup), deepest first, as runc's RemovePath does."""
    try:
        entries = [entry.path for entry in os.scandir(folder) if entry.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return
    except OSError as err:
        raise CgroupError(f"cgroup: list {folder}: {err.strerror}") from None
    for entry in entries:
        remove_tree(entry)
    rmdir_retry(folder)


def tree_pids(folder: str) -> list[int]:
    """The pids in cgroup.procs of `folder` and of every cgroup below it (runc's GetAllPids)."""
    pids = read_pids(os.path.join(folder, "cgroup.procs"))
    try:
        with os.scandir(folder) as entries:
            below = [entry.path for entry in entries if entry.is_dir(follow_symlinks=False)]
    except OSError:
        return pids
    for entry in below:
        pids += tree_pids(entry)
    return pids


def read_pids(path: str) -> list[int]:
    """The pids of a cgroup.procs file ([] if the cgroup is gone)."""
    try:
        with open(path) as f:
            return [int(line) for line in f if line.strip()]
    except (FileNotFoundError, ProcessLookupError):
        return []


def read_text(path: str) -> str | None:
    """A cgroup file's content without the trailing newline, or None if it does not exist."""
    try:
        with open(path) as f:
            return f.read().rstrip("\n")
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError as err:
        raise CgroupError(f"cgroup: read {path}: {err.strerror}") from None


def read_int(path: str, unlimited: int = 0) -> int:
    """A number from a cgroup file; `max` gives `unlimited`, a missing file 0."""
    text = read_text(path)
    if text is None or not text.strip():
        return 0
    return unlimited if text.strip() == "max" else int(text.split()[0])


def read_keyed(path: str) -> dict[str, int]:
    """A `key value` per line file (memory.stat, cpu.stat, memory.events) as a dict."""
    values = {}
    for line in (read_text(path) or "").splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            values[key] = int(value)
    return values


def wait_for(check: Any, what: str, timeout: float = 10.0) -> None:
    """Poll `check()` (quickly at first, then every 10 ms) until it is true; CgroupError after `timeout`."""
    deadline = time.monotonic() + timeout
    delay = 0.0001
    while not check():
        if time.monotonic() > deadline:
            raise CgroupError(f"cgroup: {what}: timed out after {timeout:g} s")
        time.sleep(delay)
        delay = min(delay * 2, 0.01)


class Manager:
    """One container's cgroup."""

    def __init__(self, path: str, hierarchies: list[tuple[str, str, set[str]]]) -> None:
        self.path = path
        self.hierarchies = hierarchies

    def create(self) -> None:
        raise NotImplementedError

    def join(self, pid: int, beside: int = 0) -> None:
        """Move `pid` into the cgroup (`beside`: the container's init, whose cgroup serves where the
        container's own cgroup takes no process; see V2Manager.join)."""
        raise NotImplementedError

    def apply(self, resources: dict[str, Any], notes: list[str] | None = None) -> None:
        """Apply linux.resources at create; what the cgroup version makes a no-op is appended to `notes`."""
        raise NotImplementedError

    def pids(self) -> list[int]:
        """Every process of the cgroup and of the cgroups below it."""
        raise NotImplementedError

    def kill_all(self) -> bool:
        """SIGKILL every process of the cgroup and below at once, where the kernel can (cgroup v2's
        cgroup.kill, Linux 5.14+: no fork escapes it); False where it cannot (the caller signals
        each pid)."""
        return False

    def destroy(self) -> None:
        raise NotImplementedError

    def mount_binds(self) -> list[tuple[str, str]]:
        """(name under /sys/fs/cgroup, host directory) pairs to bind into the container; `->x` is a symlink."""
        raise NotImplementedError

    # Pause, resume, update and statistics (the runc verbs beyond the lifecycle).

    def freezer_file(self) -> str:
        """The file that says whether the cgroup is frozen: v1 freezer.state (FROZEN), v2 cgroup.freeze (1)."""
        raise NotImplementedError

    def freeze(self) -> None:
        """Freeze every process of the cgroup; return once the kernel says they are all frozen."""
        raise NotImplementedError

    def is_frozen(self) -> bool:
        """Whether the cgroup is frozen now (paused); False where it has no freezer."""
        try:
            return read_text(self.freezer_file()) in ("FROZEN", "1")
        except OciError:
            return False

    def thaw(self) -> None:
        """Thaw the cgroup; return once the kernel says it is no longer frozen."""
        raise NotImplementedError

    def update(self, resources: dict[str, Any]) -> None:
        """Change the memory, pids, cpu and cpuset limits of a live cgroup (a LinuxResources subset; absent
        means unchanged)."""
        raise NotImplementedError

    def stats(self) -> dict[str, Any]:
        """cpu, memory and pids statistics in the shape of runc's `events --stats` data."""
        raise NotImplementedError

    def oom_kills(self) -> int:
        """How many processes the OOM killer has killed in the cgroup so far."""
        raise NotImplementedError

