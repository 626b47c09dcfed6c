"""Every raw Linux system call the runtime makes, in one place, behind small functions.

Each call goes through `_call`, which raises OSError with the errno on failure and, when
`RECORDER` is a list, appends `(name, args)` to it so tests can see what was asked of the kernel.
"""

from __future__ import annotations

import ctypes
import os

from oci.linux.rlimits import RLIMITS  # noqa: F401 (prlimit's numbers, kept apart from ctypes)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]

RECORDER: list[tuple[str, tuple[Any, ...]]] | None = None

# x86_64 syscall numbers for calls glibc has no wrapper for.
SYS_PIVOT_ROOT = 155
SYS_IOPRIO_SET = 251
SYS_SCHED_SETATTR = 314
SYS_CLOSE_RANGE = 436
SYS_CAPGET = 125
SYS_CAPSET = 126
SYS_BPF = 321
SYS_MOUNT_SETATTR = 442
SYS_OPEN_TREE = 428
SYS_MOVE_MOUNT = 429
OPEN_TREE_CLONE, OPEN_TREE_CLOEXEC = 1, 0o2000000
MOVE_MOUNT_F_EMPTY_PATH, MOVE_MOUNT_T_EMPTY_PATH = 0x4, 0x40
MOUNT_ATTR_IDMAP = 0x100000
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000

CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MNT_DETACH = 2


PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def _record(name: str, args: tuple[Any, ...]) -> None:
    if RECORDER is not None:
        RECORDER.append((name, args))


def _check(name: str, result: int) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{name}: {os.strerror(err)}")
    return result


def _call(name: str, func: Any, *args: Any) -> int:
    _record(name, args)
    return _check(name, func(*args))


def _bytes(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def unshare(flags: int) -> None:
    """Move this process into new namespaces (CLONE_NEW* flags)."""
    _call("unshare", _libc.unshare, ctypes.c_int(flags))


def setns(fd: int, nstype: int) -> None:
    """Join the namespace open at `fd`."""
    _call("setns", _libc.setns, ctypes.c_int(fd), ctypes.c_int(nstype))


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    """mount(2); OSError names the target."""
    _record("mount", (source, target, fstype, flags, data))
    if _libc.mount(_bytes(source), _bytes(target), _bytes(fstype), ctypes.c_ulong(flags), _bytes(data)) < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source or ''} on {target} ({fstype or 'bind/remount'}): {os.strerror(err)}")


def umount2(target: str, flags: int = 0) -> None:
    """umount2(2)."""
    _call("umount2", _libc.umount2, _bytes(target), ctypes.c_int(flags))


def pivot_root(new_root: str, put_old: str) -> None:
    """pivot_root(2)."""
    _call("pivot_root", _libc.syscall, ctypes.c_long(SYS_PIVOT_ROOT), _bytes(new_root), _bytes(put_old))


def sethostname(name: str) -> None:
    raw = name.encode()
    _call("sethostname", _libc.sethostname, raw, ctypes.c_size_t(len(raw)))


def setdomainname(name: str) -> None:
    raw = name.encode()
    _call("setdomainname", _libc.setdomainname, raw, ctypes.c_size_t(len(raw)))


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """prctl(2) with integer arguments."""
    return _call("prctl", _libc.prctl, ctypes.c_int(option), ctypes.c_ulong(arg2), ctypes.c_ulong(arg3),
                 ctypes.c_ulong(arg4), ctypes.c_ulong(arg5))


class _Rlimit(ctypes.Structure):
    _fields_ = [("rlim_cur", ctypes.c_uint64), ("rlim_max", ctypes.c_uint64)]


def setrlimit(resource: int, soft: int, hard: int) -> None:
    """Set this process's limit `resource` (an RLIMITS value) through prlimit(2); values are unsigned 64-bit
    (RLIM_INFINITY is 2**64-1, and -1 means the same). The `resource` module would do it for ~1 ms of import."""
    new = _Rlimit(soft & 0xFFFFFFFFFFFFFFFF, hard & 0xFFFFFFFFFFFFFFFF)
    _call("prlimit", _libc.prlimit, ctypes.c_int(0), ctypes.c_int(resource), ctypes.byref(new), None)


def getrlimit(resource: int) -> tuple[int, int]:
    """(soft, hard) of this process's limit `resource`, through prlimit(2)."""
    old = _Rlimit()
    _call("prlimit", _libc.prlimit, ctypes.c_int(0), ctypes.c_int(resource), None, ctypes.byref(old))
    return old.rlim_cur, old.rlim_max


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def capget(pid: int = 0) -> tuple[int, int, int]:
    """(effective, permitted, inheritable) of `pid` as 64-bit masks."""
    header, data = _CapHeader(_LINUX_CAPABILITY_VERSION_3, pid), (_CapData * 2)()
    _call("capget", _libc.syscall, ctypes.c_long(SYS_CAPGET), ctypes.byref(header), ctypes.byref(data))
    return tuple((getattr(data[1], f) << 32) | getattr(data[0], f)  # type: ignore[return-value]
                 for f in ("effective", "permitted", "inheritable"))


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """Set this thread's effective, permitted and inheritable sets (64-bit masks)."""
    header, data = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0), (_CapData * 2)()
    for i in range(2):
        data[i].effective = (effective >> (32 * i)) & 0xFFFFFFFF
        data[i].permitted = (permitted >> (32 * i)) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> (32 * i)) & 0xFFFFFFFF
    _call("capset", _libc.syscall, ctypes.c_long(SYS_CAPSET), ctypes.byref(header), ctypes.byref(data))


def personality(persona: int) -> int:
    return _call("personality", _libc.personality, ctypes.c_ulong(persona))


def ioprio_set(which: int, who: int, ioprio: int) -> None:
    _call("ioprio_set", _libc.syscall, ctypes.c_long(SYS_IOPRIO_SET), ctypes.c_int(which), ctypes.c_int(who),
          ctypes.c_int(ioprio))


class SchedAttr(ctypes.Structure):
    """struct sched_attr (SCHED_ATTR_SIZE_VER1)."""

    _fields_ = [("size", ctypes.c_uint32), ("sched_policy", ctypes.c_uint32), ("sched_flags", ctypes.c_uint64),
                ("sched_nice", ctypes.c_int32), ("sched_priority", ctypes.c_uint32),
                ("sched_runtime", ctypes.c_uint64), ("sched_deadline", ctypes.c_uint64),
                ("sched_period", ctypes.c_uint64), ("sched_util_min", ctypes.c_uint32),
                ("sched_util_max", ctypes.c_uint32)]


def sched_setattr(attr: SchedAttr) -> None:
    attr.size = ctypes.sizeof(SchedAttr)
    _call("sched_setattr", _libc.syscall, ctypes.c_long(SYS_SCHED_SETATTR), ctypes.c_int(0), ctypes.byref(attr),
          ctypes.c_uint(0))


def close_range(first: int, last: int = 0xFFFFFFFF, flags: int = 0) -> None:
    """Close (or with CLOSE_RANGE_CLOEXEC=4, mark close-on-exec) every fd in [first, last]."""
    _call("close_range", _libc.syscall, ctypes.c_long(SYS_CLOSE_RANGE), ctypes.c_uint(first), ctypes.c_uint(last),
          ctypes.c_uint(flags))


def bpf(cmd: int, attr: bytes) -> int:
    """bpf(2) with a bpf_attr given as bytes; the call's result (a new fd for loads)."""
    buf = ctypes.create_string_buffer(attr, len(attr))
    return _call("bpf", _libc.syscall, ctypes.c_long(SYS_BPF), ctypes.c_int(cmd), buf, ctypes.c_uint(len(attr)))


class MountAttr(ctypes.Structure):
    """struct mount_attr."""

    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64), ("propagation", ctypes.c_uint64),
                ("userns_fd", ctypes.c_uint64)]


def mount_setattr(dirfd: int, path: str, flags: int, attr_set: int, attr_clr: int, userns_fd: int = 0) -> None:
    """mount_setattr(2): change mount attributes (recursively with AT_RECURSIVE); with MOUNT_ATTR_IDMAP, the
    user namespace whose mappings the mount takes."""
    attr = MountAttr(attr_set, attr_clr, 0, userns_fd)
    _call("mount_setattr", _libc.syscall, ctypes.c_long(SYS_MOUNT_SETATTR), ctypes.c_int(dirfd), _bytes(path),
          ctypes.c_uint(flags), ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)))


def open_tree(path: str, flags: int) -> int:
    """open_tree(2) at `path` (absolute): with OPEN_TREE_CLONE, a detached copy of the mount (AT_RECURSIVE: and
    its submounts), as an fd."""
    return _call("open_tree", _libc.syscall, ctypes.c_long(SYS_OPEN_TREE), ctypes.c_int(-100), _bytes(path),
                 ctypes.c_uint(flags))


def move_mount(from_fd: int, to_fd: int) -> None:
    """move_mount(2): attach the mount `from_fd` holds onto the directory `to_fd` holds."""
    _call("move_mount", _libc.syscall, ctypes.c_long(SYS_MOVE_MOUNT), ctypes.c_int(from_fd), _bytes(""),
          ctypes.c_int(to_fd), _bytes(""), ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH))


def ioctl(fd: int, request: int, buffer: bytes) -> bytes:
    """ioctl(2) with an in-out argument given as bytes (a struct ifreq, ...); the buffer as the kernel left it."""
    buf = ctypes.create_string_buffer(buffer, len(buffer))
    _call("ioctl", _libc.ioctl, ctypes.c_int(fd), ctypes.c_ulong(request), buf)
    return buf.raw
