"""The kernel seam: every call ocikit makes to Linux beyond the `os` module's plain file work goes
through one object, `kernel()`, so that tests can put a fake in its place.

`Kernel` makes the calls: one method per system call (or per privileged `os` call: mknod, chown,
chroot, setresuid, ...), each a few lines over libc (oci.linux.libc), raising OSError with the
errno. `oci.linux.fakekernel.RecordingKernel` records the same calls and answers from its own
state without making any (youki's `Syscall` trait and its test implementation are the model);
`use()` swaps it in.

Performance rule, stated once for oci/linux: oci-run's verbs start many times per container, and
this module is imported by every path that may talk to the kernel, including CNI DEL and `kill`,
which mostly do not. So importing it costs a class definition and constants: libc and ctypes are
loaded by the first call that needs them (`Kernel.load()` does it on purpose, before a fork into
namespaces or pivot_root, where the interpreter's files may be out of reach). Method bodies stay
thin (no validation, no logging): callers decide what a failure means.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MNT_DETACH = 2
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
OPEN_TREE_CLONE, OPEN_TREE_CLOEXEC = 1, 0o2000000
MOVE_MOUNT_F_EMPTY_PATH, MOVE_MOUNT_T_EMPTY_PATH = 0x4, 0x40
MOUNT_ATTR_IDMAP = 0x100000
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_IN_ROOT = 0x10

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

CLOSE_RANGE_CLOEXEC = 4
IOPRIO_WHO_PROCESS = 1
U64 = 0xFFFFFFFFFFFFFFFF  # an unsigned 64-bit value's mask (RLIM_INFINITY; -1 means the same)

# prlimit's resources by the config's names (asm-generic/resource.h, x86_64)
RLIMITS = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4, "RLIMIT_RSS": 5,
    "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_OFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13, "RLIMIT_RTPRIO": 14,
    "RLIMIT_RTTIME": 15,
}


def _b(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


class Kernel:
    """The real kernel: each method makes its call and raises OSError (errno set) on failure."""

    c: Any  # oci.linux.libc, bound on first use (__getattr__)

    def __getattr__(self, name: str) -> Any:
        if name != "c":
            raise AttributeError(name)
        from oci.linux import libc

        self.c = libc
        return libc

    def load(self) -> None:
        """Load libc now: before a fork into namespaces or pivot_root hides the interpreter's files."""
        self.c  # noqa: B018 - the attribute's first read loads it

    # namespaces and the root

    def unshare(self, flags: int) -> None:
        """Move this process into new namespaces (CLONE_NEW* flags)."""
        self.c.check("unshare", self.c.libc.unshare(flags))

    def setns(self, fd: int, nstype: int) -> None:
        """Join the namespace open at `fd` (nstype: its CLONE_NEW* flag, or 0 for any)."""
        self.c.check("setns", self.c.libc.setns(fd, nstype))

    def pivot_root(self, new_root: str, put_old: str) -> None:
        c = self.c
        c.check("pivot_root", c.libc.syscall(c.long(c.SYS_PIVOT_ROOT), _b(new_root), _b(put_old)))

    def chroot(self, path: str) -> None:
        os.chroot(path)

    def sethostname(self, name: str) -> None:
        raw = name.encode()
        self.c.check("sethostname", self.c.libc.sethostname(raw, len(raw)))

    def setdomainname(self, name: str) -> None:
        raw = name.encode()
        self.c.check("setdomainname", self.c.libc.setdomainname(raw, len(raw)))

    # mounts

    def mount(self, source: str | None, target: str, fstype: str | None, flags: int = 0,
              data: str | None = None) -> None:
        """mount(2); the OSError names source, target and type."""
        c = self.c
        if c.libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)) < 0:
            err = c.get_errno()
            raise OSError(err, f"mount {source or ''} on {target} ({fstype or 'bind/remount'}): {os.strerror(err)}")

    def umount2(self, target: str, flags: int = 0) -> None:
        self.c.check("umount2", self.c.libc.umount2(_b(target), flags))

    def mount_setattr(self, dirfd: int, path: str, flags: int, attr_set: int, attr_clr: int,
                      userns_fd: int = 0) -> None:
        """Change mount attributes (recursively with AT_RECURSIVE); with MOUNT_ATTR_IDMAP, the user
        namespace whose mappings the mount takes."""
        c = self.c
        attr = c.MountAttr(attr_set, attr_clr, 0, userns_fd)
        c.check("mount_setattr", c.libc.syscall(c.long(c.SYS_MOUNT_SETATTR), c.cint(dirfd), _b(path), c.uint(flags),
                                                c.byref(attr), c.size_t(c.sizeof(attr))))

    def open_tree(self, path: str, flags: int) -> int:
        """An fd of the mount at `path` (absolute); with OPEN_TREE_CLONE a detached copy (AT_RECURSIVE: with
        its submounts)."""
        c = self.c
        return c.check("open_tree", c.libc.syscall(c.long(c.SYS_OPEN_TREE), c.cint(AT_FDCWD), _b(path),
                                                   c.uint(flags)))

    def move_mount(self, from_fd: int, to_fd: int) -> None:
        """Attach the mount `from_fd` holds onto the directory `to_fd` holds."""
        c = self.c
        c.check("move_mount", c.libc.syscall(c.long(c.SYS_MOVE_MOUNT), c.cint(from_fd), b"", c.cint(to_fd), b"",
                                             c.uint(MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH)))

    # files that only a privileged process makes, and opening inside a root

    def mknod(self, path: str, mode: int, device: int = 0) -> None:
        os.mknod(path, mode, device)

    def chown(self, path: str, uid: int, gid: int) -> None:
        """lchown: a symlink's own owner."""
        os.lchown(path, uid, gid)

    def chmod(self, path: str, mode: int) -> None:
        os.chmod(path, mode)

    def symlink(self, target: str, path: str) -> None:
        os.symlink(target, path)

    def openat2(self, dir_fd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
        """openat2(2): `path` resolved beneath `dir_fd` under the RESOLVE_* rules; OSError names the path
        (ENOSYS where the kernel lacks the call)."""
        c = self.c
        how = c.OpenHow(flags, mode, resolve)
        fd = c.libc.syscall(c.long(c.SYS_OPENAT2), c.cint(dir_fd), c.c_char_p(os.fsencode(path)), c.byref(how),
                            c.size_t(c.sizeof(how)))
        if fd < 0:
            err = c.get_errno()
            raise OSError(err, os.strerror(err), path)
        return fd

    def syncfs(self, fd: int) -> None:
        c = self.c
        if c.libc.syncfs(fd) != 0:
            err = c.get_errno()
            raise OSError(err, os.strerror(err))

    # the process: capabilities, ids, limits, scheduling, fds, seccomp

    def prctl(self, option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
        c = self.c
        return c.check("prctl", c.libc.prctl(option, arg2, arg3, arg4, arg5))

    def capget(self, pid: int = 0) -> tuple[int, int, int]:
        """(effective, permitted, inheritable) of `pid` as 64-bit masks."""
        c = self.c
        header, data = c.CapHeader(c.LINUX_CAPABILITY_VERSION_3, pid), (c.CapData * 2)()
        c.check("capget", c.libc.syscall(c.long(c.SYS_CAPGET), c.byref(header), c.byref(data)))
        return ((data[1].effective << 32) | data[0].effective, (data[1].permitted << 32) | data[0].permitted,
                (data[1].inheritable << 32) | data[0].inheritable)

    def capset(self, effective: int, permitted: int, inheritable: int) -> None:
        """Set this thread's effective, permitted and inheritable sets (64-bit masks)."""
        c = self.c
        header, data = c.CapHeader(c.LINUX_CAPABILITY_VERSION_3, 0), (c.CapData * 2)()
        for i in range(2):
            data[i].effective = (effective >> (32 * i)) & 0xFFFFFFFF
            data[i].permitted = (permitted >> (32 * i)) & 0xFFFFFFFF
            data[i].inheritable = (inheritable >> (32 * i)) & 0xFFFFFFFF
        c.check("capset", c.libc.syscall(c.long(c.SYS_CAPSET), c.byref(header), c.byref(data)))

    def setgroups(self, gids: list[int]) -> None:
        os.setgroups(gids)

    def setresgid(self, gid: int) -> None:
        os.setresgid(gid, gid, gid)

    def setresuid(self, uid: int) -> None:
        os.setresuid(uid, uid, uid)

    def setrlimit(self, resource: int, soft: int, hard: int) -> None:
        """Set this process's limit `resource` (an RLIMITS value) through prlimit(2): unsigned 64-bit
        values (-1 is RLIM_INFINITY). The `resource` module would do it for ~1 ms of import."""
        c = self.c
        new = c.Rlimit(soft & U64, hard & U64)
        c.check("prlimit", c.libc.prlimit(0, resource, c.byref(new), None))

    def getrlimit(self, resource: int) -> tuple[int, int]:
        """(soft, hard) of this process's limit `resource`."""
        c = self.c
        old = c.Rlimit()
        c.check("prlimit", c.libc.prlimit(0, resource, None, c.byref(old)))
        return old.rlim_cur, old.rlim_max

    def personality(self, persona: int) -> int:
        return self.c.check("personality", self.c.libc.personality(persona))

    def ioprio_set(self, which: int, who: int, ioprio: int) -> None:
        c = self.c
        c.check("ioprio_set", c.libc.syscall(c.long(c.SYS_IOPRIO_SET), c.cint(which), c.cint(who), c.cint(ioprio)))

    def sched_setattr(self, policy: int, flags: int = 0, nice: int = 0, priority: int = 0, runtime: int = 0,
                      deadline: int = 0, period: int = 0) -> None:
        """This thread's scheduling policy and its parameters (struct sched_attr)."""
        c = self.c
        attr = c.SchedAttr(c.sizeof(c.SchedAttr), policy, flags, nice, priority, runtime, deadline, period)
        c.check("sched_setattr", c.libc.syscall(c.long(c.SYS_SCHED_SETATTR), c.cint(0), c.byref(attr), c.uint(0)))

    def close_range(self, first: int, last: int = 0xFFFFFFFF, flags: int = 0) -> None:
        """Close (with CLOSE_RANGE_CLOEXEC: mark close-on-exec) every fd in [first, last]."""
        c = self.c
        c.check("close_range", c.libc.syscall(c.long(c.SYS_CLOSE_RANGE), c.uint(first), c.uint(last),
                                              c.uint(flags)))

    def load_seccomp(self, seccomp_filter: Any) -> None:
        """Load a libseccomp filter (oci.linux.seccomp.build's) into this process."""
        seccomp_filter.load()

    # devices and programs

    def ioctl(self, fd: int, request: int, buffer: bytes) -> bytes:
        """ioctl(2) with an in-out argument given as bytes (a struct ifreq, ...); the buffer as the kernel left it."""
        c = self.c
        buf = c.string_buffer(buffer, len(buffer))
        c.check("ioctl", c.libc.ioctl(c.cint(fd), c.ulong(request), buf))
        return buf.raw

    def bpf(self, cmd: int, attr: bytes | bytearray) -> int:
        """bpf(2) with a bpf_attr given as bytes; the call's result (a new fd for loads). A bytearray
        gets back the attr as the kernel left it, failed call or not (BPF_PROG_QUERY's count)."""
        c = self.c
        buf = c.string_buffer(bytes(attr), len(attr))
        result = c.libc.syscall(c.long(c.SYS_BPF), c.cint(cmd), buf, c.uint(len(attr)))
        if isinstance(attr, bytearray):
            attr[:] = buf.raw[:len(attr)]
        return c.check("bpf", result)


_current = Kernel()


def kernel() -> Kernel:
    """The kernel every caller talks to: the real one, unless a test has swapped in a fake (`use`)."""
    return _current


def use(replacement: Kernel) -> Kernel:
    """Make `replacement` the kernel every caller talks to; returns the one it replaces, to put back."""
    global _current
    previous, _current = _current, replacement
    return previous
