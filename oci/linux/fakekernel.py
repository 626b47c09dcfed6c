"""A kernel for tests: records every call made through oci.linux.kernel and answers from its own state.

Swapped in with `oci.linux.kernel.use(RecordingKernel())` (tests/unit/conftest.py has a fixture), it
lets unit tests run the runtime's mount, device, namespace and capability steps without root and
check what they asked of the kernel. Nothing is mounted, made, joined or dropped: the one call
passed on is openat2, which only resolves a path in the test's own tree. A path given as
/proc/self/fd/N (how the runtime names a mount target it holds open) is recorded as the file the fd
names at the time of the call, since the fd is closed right after.

State it answers from (change it before the code under test runs):
capabilities (`effective`, `permitted`, `inheritable`, `bounding`, `ambient`, as 64-bit masks) with
capset(2)'s rules and the set-uid rules of capabilities(7) (keep-caps); `rlimits`; interface
flags for SIOCGIFFLAGS (`link_flags`); the ids, hostname and flags set through prctl; the ids of
the BPF programs attached to a cgroup (`bpf_attached`, one list: tests use one cgroup), which
BPF_PROG_QUERY answers (into the caller's buffer, as the kernel does) and BPF_PROG_ATTACH and
BPF_PROG_DETACH change.
Failures are scripted with `fail()`.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct

from oci.linux import kernel as k
from oci.linux.cgroups.devices_bpf import (
    BPF_F_REPLACE,
    BPF_PROG_ATTACH,
    BPF_PROG_DETACH,
    BPF_PROG_GET_FD_BY_ID,
    BPF_PROG_LOAD,
    BPF_PROG_QUERY,
)
from oci.linux.kernel import Kernel

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

ALL_CAPS = (1 << 41) - 1  # CAP_CHOWN .. CAP_CHECKPOINT_RESTORE
SIOCGIFFLAGS, SIOCSIFFLAGS = 0x8913, 0x8914


def _named(path: str) -> str:
    """The file a /proc/self/fd/N path names now (other paths as they are)."""
    if path.startswith("/proc/self/fd/"):
        try:
            return os.readlink(path)
        except OSError:
            return path
    return path


def _fd_path(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return f"fd {fd}"


class _Failure:
    def __init__(self, name: str, err: int, when: Callable[..., bool] | None, times: int) -> None:
        self.name, self.err, self.when, self.times = name, err, when, times


class RecordingKernel(Kernel):
    """Records (name, args) of every call in `calls`; answers from the state described in the module."""

    def __init__(self, capabilities: int = ALL_CAPS) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.effective = self.permitted = self.bounding = capabilities
        self.inheritable = self.ambient = 0
        self.keep_caps = False
        self.no_new_privs = False
        self.dumpable = True
        self.subreaper = False
        self.uid = self.gid = 0
        self.groups: list[int] = []
        self.hostname: str | None = None
        self.domainname: str | None = None
        self.rlimits: dict[int, tuple[int, int]] = {}
        self.link_flags: dict[str, int] = {"lo": 0}
        self.seccomp: list[Any] = []  # filters loaded, in order
        self.bpf_attached: list[int] = []  # ids of the programs on the cgroup, in attach order
        self._bpf_ids: dict[int, int] = {}  # program fds handed out (of /dev/null) -> their program's id
        self._failures: list[_Failure] = []
        self._real = Kernel()

    def __getattr__(self, name: str) -> Any:  # never libc: a method this class lacks must not reach the kernel
        raise AttributeError(f"RecordingKernel has no {name}")

    # scripting and reading

    def fail(self, name: str, err: int, when: Callable[..., bool] | None = None, times: int = 1) -> None:
        """Make the next `times` calls of `name` (those whose args `when(*args)` accepts) fail with `err`."""
        self._failures.append(_Failure(name, err, when, times))

    def called(self, name: str) -> list[tuple[Any, ...]]:
        """The arguments of every call of `name`, in order."""
        return [args for call, args in self.calls if call == name]

    def names(self) -> list[str]:
        """The calls made, in order."""
        return [call for call, _ in self.calls]

    def _record(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))
        for failure in self._failures:
            if failure.name == name and failure.times > 0 and (failure.when is None or failure.when(*args)):
                failure.times -= 1
                raise OSError(failure.err, f"{name}: {os.strerror(failure.err)}")

    def load(self) -> None:
        pass

    # namespaces and the root

    def unshare(self, flags: int) -> None:
        self._record("unshare", flags)

    def setns(self, fd: int, nstype: int) -> None:
        self._record("setns", _fd_path(fd), nstype)

    def pivot_root(self, new_root: str, put_old: str) -> None:
        self._record("pivot_root", new_root, put_old)

    def chroot(self, path: str) -> None:
        self._record("chroot", path)

    def sethostname(self, name: str) -> None:
        self._record("sethostname", name)
        self.hostname = name

    def setdomainname(self, name: str) -> None:
        self._record("setdomainname", name)
        self.domainname = name

    # mounts

    def mount(self, source: str | None, target: str, fstype: str | None, flags: int = 0,
              data: str | None = None) -> None:
        self._record("mount", source, _named(target), fstype, flags, data)

    def umount2(self, target: str, flags: int = 0) -> None:
        self._record("umount2", _named(target), flags)

    def mount_setattr(self, dirfd: int, path: str, flags: int, attr_set: int, attr_clr: int,
                      userns_fd: int = 0) -> None:
        self._record("mount_setattr", _fd_path(dirfd), path, flags, attr_set, attr_clr, userns_fd)

    def open_tree(self, path: str, flags: int) -> int:
        self._record("open_tree", path, flags)
        return os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)  # a stand-in the caller may close

    def move_mount(self, from_fd: int, to_fd: int) -> None:
        self._record("move_mount", from_fd, _fd_path(to_fd))

    # files

    def mknod(self, path: str, mode: int, device: int = 0) -> None:
        self._record("mknod", path, mode, device)

    def chown(self, path: str, uid: int, gid: int) -> None:
        self._record("chown", path, uid, gid)

    def chmod(self, path: str, mode: int) -> None:
        self._record("chmod", path, mode)

    def symlink(self, target: str, path: str) -> None:
        self._record("symlink", target, path)

    def openat2(self, dir_fd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
        self._record("openat2", _fd_path(dir_fd), path, flags, resolve)
        return self._real.openat2(dir_fd, path, flags, resolve, mode)

    def syncfs(self, fd: int) -> None:
        self._record("syncfs", _fd_path(fd))

    # the process

    def prctl(self, option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
        self._record("prctl", option, arg2, arg3, arg4, arg5)
        if option in (k.PR_CAPBSET_READ, k.PR_CAPBSET_DROP) and not 0 <= arg2 <= 63:
            raise OSError(errno.EINVAL, "prctl: Invalid argument")
        if option == k.PR_CAPBSET_READ:
            return self.bounding >> arg2 & 1
        if option == k.PR_CAPBSET_DROP:
            if not self.effective >> 8 & 1:  # CAP_SETPCAP
                raise OSError(errno.EPERM, "prctl: Operation not permitted")
            self.bounding &= ~(1 << arg2)
        elif option == k.PR_CAP_AMBIENT and arg2 == k.PR_CAP_AMBIENT_CLEAR_ALL:
            self.ambient = 0
        elif option == k.PR_CAP_AMBIENT and arg2 == k.PR_CAP_AMBIENT_RAISE:
            if not self.permitted & self.inheritable & (1 << arg3):
                raise OSError(errno.EPERM, "prctl: Operation not permitted")
            self.ambient |= 1 << arg3
        elif option == k.PR_SET_KEEPCAPS:
            self.keep_caps = bool(arg2)
        elif option == k.PR_SET_NO_NEW_PRIVS:
            self.no_new_privs = bool(arg2)
        elif option == k.PR_SET_DUMPABLE:
            self.dumpable = bool(arg2)
        elif option == k.PR_SET_CHILD_SUBREAPER:
            self.subreaper = bool(arg2)
        return 0

    def capget(self, pid: int = 0) -> tuple[int, int, int]:
        self._record("capget", pid)
        return self.effective, self.permitted, self.inheritable

    def capset(self, effective: int, permitted: int, inheritable: int) -> None:
        """capset(2)'s rules: permitted may only shrink, effective stays within it, inheritable within the
        old inheritable and the bounding set (and, without CAP_SETPCAP in effective, the old permitted)."""
        self._record("capset", effective, permitted, inheritable)
        allowed_inheritable = self.inheritable | self.bounding
        if not self.effective >> 8 & 1:  # CAP_SETPCAP
            allowed_inheritable &= self.inheritable | self.permitted
        if permitted & ~self.permitted or effective & ~permitted or inheritable & ~allowed_inheritable:
            raise OSError(errno.EPERM, "capset: Operation not permitted")
        self.effective, self.permitted, self.inheritable = effective, permitted, inheritable
        self.ambient &= permitted & inheritable

    def setgroups(self, gids: list[int]) -> None:
        self._record("setgroups", list(gids))
        self.groups = list(gids)

    def setresgid(self, gid: int) -> None:
        self._record("setresgid", gid)
        self.gid = gid

    def setresuid(self, uid: int) -> None:
        """From uid 0 to another, the permitted and effective sets are cleared, unless keep-caps holds
        the permitted one; ambient goes too (capabilities(7))."""
        self._record("setresuid", uid)
        if self.uid == 0 and uid != 0:
            self.effective = 0
            self.ambient = 0
            if not self.keep_caps:
                self.permitted = 0
        self.uid = uid

    def setrlimit(self, resource: int, soft: int, hard: int) -> None:
        self._record("setrlimit", resource, soft & k.U64, hard & k.U64)
        self.rlimits[resource] = (soft & k.U64, hard & k.U64)

    def getrlimit(self, resource: int) -> tuple[int, int]:
        self._record("getrlimit", resource)
        return self.rlimits.get(resource, (k.U64, k.U64))

    def personality(self, persona: int) -> int:
        self._record("personality", persona)
        return 0

    def ioprio_set(self, which: int, who: int, ioprio: int) -> None:
        self._record("ioprio_set", which, who, ioprio)

    def sched_setattr(self, policy: int, flags: int = 0, nice: int = 0, priority: int = 0, runtime: int = 0,
                      deadline: int = 0, period: int = 0) -> None:
        self._record("sched_setattr", policy, flags, nice, priority, runtime, deadline, period)

    def close_range(self, first: int, last: int = 0xFFFFFFFF, flags: int = 0) -> None:
        self._record("close_range", first, last, flags)

    def load_seccomp(self, seccomp_filter: Any) -> None:
        self._record("load_seccomp", seccomp_filter)
        self.seccomp.append(seccomp_filter)

    # devices and programs

    def ioctl(self, fd: int, request: int, buffer: bytes) -> bytes:
        """SIOCGIFFLAGS and SIOCSIFFLAGS answer from and change `link_flags`; others return the buffer."""
        self._record("ioctl", request, buffer)
        name = buffer[:16].rstrip(b"\0").decode()
        if request == SIOCGIFFLAGS:
            if name not in self.link_flags:
                raise OSError(errno.ENODEV, "ioctl: No such device")
            return buffer[:16] + self.link_flags[name].to_bytes(2, "little") + buffer[18:]
        if request == SIOCSIFFLAGS:
            self.link_flags[name] = int.from_bytes(buffer[16:18], "little")
        return buffer

    def bpf(self, cmd: int, attr: bytes | bytearray) -> int:
        """Loads and BPF_PROG_GET_FD_BY_ID hand out an fd (of /dev/null) standing for a program (a
        load's gets a new id); BPF_PROG_QUERY, ATTACH and DETACH answer from and change `bpf_attached`."""
        self._record("bpf", cmd, bytes(attr))
        if cmd in (BPF_PROG_LOAD, BPF_PROG_GET_FD_BY_ID):
            prog_id = struct.unpack_from("<I", attr)[0]
            if cmd == BPF_PROG_LOAD:
                prog_id = max([100, *self.bpf_attached, *self._bpf_ids.values()]) + 1
            elif prog_id not in self.bpf_attached:
                raise OSError(errno.ENOENT, "bpf: No such file or directory")
            fd = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
            self._bpf_ids[fd] = prog_id
            return fd
        if cmd == BPF_PROG_QUERY:
            ids_address, room = struct.unpack_from("<QI", attr, 16)
            if isinstance(attr, bytearray):
                struct.pack_into("<I", attr, 24, len(self.bpf_attached))
            given = self.bpf_attached[:room]
            if ids_address and given:
                ctypes.memmove(ids_address, struct.pack(f"<{len(given)}I", *given), 4 * len(given))
            if room < len(self.bpf_attached):
                raise OSError(errno.ENOSPC, "bpf: No space left on device")
        elif cmd == BPF_PROG_ATTACH:
            prog_fd, flags, replace_fd = struct.unpack_from("<I4xII", attr, 4)
            if flags & BPF_F_REPLACE:
                if self._bpf_ids.get(replace_fd) not in self.bpf_attached:
                    raise OSError(errno.ENOENT, "bpf: No such file or directory")
                self.bpf_attached[self.bpf_attached.index(self._bpf_ids[replace_fd])] = self._bpf_ids[prog_fd]
            else:
                self.bpf_attached.append(self._bpf_ids[prog_fd])
        elif cmd == BPF_PROG_DETACH:
            prog_id = self._bpf_ids.get(struct.unpack_from("<I", attr, 4)[0])
            if prog_id not in self.bpf_attached:
                raise OSError(errno.ENOENT, "bpf: No such file or directory")
            self.bpf_attached.remove(prog_id)
        return 0
