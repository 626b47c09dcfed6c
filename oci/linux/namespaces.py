"""Linux namespaces: the config's types, creating new ones, joining ones named by path, id maps."""

from __future__ import annotations

import os

from oci.errors import InvalidInput, NotFound, OciError
from oci.linux.kernel import (
    CLONE_NEWCGROUP,
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWTIME,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
    kernel,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, TypeVar

    T = TypeVar("T")

FLAGS = {
    "pid": CLONE_NEWPID,
    "network": CLONE_NEWNET,
    "mount": CLONE_NEWNS,
    "ipc": CLONE_NEWIPC,
    "uts": CLONE_NEWUTS,
    "user": CLONE_NEWUSER,
    "cgroup": CLONE_NEWCGROUP,
    "time": CLONE_NEWTIME,
}
# the config's type -> the name in /proc/PID/ns
PROC_NAMES = {"pid": "pid", "network": "net", "mount": "mnt", "ipc": "ipc", "uts": "uts", "user": "user",
              "cgroup": "cgroup", "time": "time"}

# The order in which namespaces named by path are joined: user first (it grants the rights
# to join the others), mount last (its path may live in another mount namespace).
JOIN_ORDER = ("user", "ipc", "uts", "network", "pid", "cgroup", "time", "mount")


class Namespaces:
    """The `linux.namespaces` list of a config, split into new ones and ones to join."""

    def __init__(self, entries: list[dict[str, Any]]) -> None:
        self.new: set[str] = set()
        self.join: dict[str, str] = {}
        for i, entry in enumerate(entries):
            kind = entry["type"]
            if kind in self.new or kind in self.join:
                raise InvalidInput(f"/linux/namespaces/{i}: namespace {kind} listed twice")
            if entry.get("path"):
                self.join[kind] = entry["path"]
            else:
                self.new.add(kind)

    def has(self, kind: str) -> bool:
        """Whether the container gets its own `kind` namespace (new or joined)."""
        return kind in self.new or kind in self.join

    def open_joins(self) -> dict[str, int]:
        """Open every namespace path to join (before any namespace change), kind -> fd."""
        fds = {}
        for kind in JOIN_ORDER:
            if kind in self.join:
                try:
                    fds[kind] = os.open(self.join[kind], os.O_RDONLY | os.O_CLOEXEC)
                except OSError as err:
                    raise InvalidInput(f"namespace {kind}: {self.join[kind]}: {err.strerror}") from None
        return fds

    def unshare_flags(self, exclude: tuple[str, ...] = ()) -> int:
        flags = 0
        for kind in self.new:
            if kind not in exclude:
                flags |= FLAGS[kind]
        return flags


def join(kind: str, fd: int) -> None:
    """setns into the namespace open at `fd`, then close it."""
    try:
        kernel().setns(fd, FLAGS[kind])
    finally:
        os.close(fd)


def run_in(path: str, kind: str, call: Callable[[], T]) -> T:
    """`call()` made with this thread in the `kind` namespace at `path`, then back in its own (a netlink
    socket opened inside stays bound to that namespace). NotFound for a missing path, InvalidInput for
    a file that is not such a namespace."""
    try:
        target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFound(f"{path}: no such {kind} namespace") from None
    home = os.open(f"/proc/thread-self/ns/{PROC_NAMES[kind]}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            kernel().setns(target, FLAGS[kind])
        except OSError as err:
            raise InvalidInput(f"{path}: not a {kind} namespace ({os.strerror(err.errno or 0)})") from None
        try:
            return call()
        finally:
            try:
                kernel().setns(home, FLAGS[kind])
            except OSError as err:
                raise OciError(f"cannot return to the host {kind} namespace: {os.strerror(err.errno or 0)}") from None
    finally:
        os.close(target)
        os.close(home)


def write_id_maps(pid: int, uid_maps: list[dict[str, int]], gid_maps: list[dict[str, int]]) -> None:
    """Write /proc/PID/uid_map and gid_map from the config's mappings."""
    for name, maps in (("uid_map", uid_maps), ("gid_map", gid_maps)):
        if not maps:
            continue
        text = "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in maps)
        with open(f"/proc/{pid}/{name}", "w") as f:
            f.write(text)


def write_time_offsets(offsets: dict[str, dict[str, int]]) -> None:
    """Write /proc/self/timens_offsets (before the first child enters the new time namespace)."""
    names = {"monotonic": "monotonic", "boottime": "boottime"}
    lines = "".join(f"{names[clock]} {v.get('secs', 0)} {v.get('nanosecs', 0)}\n" for clock, v in offsets.items())
    with open("/proc/self/timens_offsets", "w") as f:
        f.write(lines)


SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def loopback_up() -> None:
    """Bring `lo` up in this (new) network namespace, as runc does: SIOCSIFFLAGS on a datagram socket
    (struct ifreq: the name in 16 bytes, then the flags as a short)."""
    import _socket

    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        request = b"lo".ljust(16, b"\0") + bytes(24)
        flags = int.from_bytes(kernel().ioctl(sock.fileno(), SIOCGIFFLAGS, request)[16:18], "little")
        if not flags & IFF_UP:
            kernel().ioctl(sock.fileno(), SIOCSIFFLAGS, request[:16] + (flags | IFF_UP).to_bytes(2, "little")
                           + bytes(22))
    finally:
        sock.close()
