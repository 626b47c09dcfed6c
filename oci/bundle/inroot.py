"""Open a file inside a root filesystem so that no symlink or `..` can lead out of it.

Uses openat2(2) with RESOLVE_IN_ROOT: the kernel resolves every component as if the rootfs
were `/`, so an absolute symlink such as `/etc/passwd -> /host/etc/passwd` stays inside.
"""

from __future__ import annotations

import ctypes
import os

from oci.errors import NotFound, Unsupported

_SYS_OPENAT2 = 437  # the same number on every architecture (allocated after the syscall table unification)
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_IN_ROOT = 0x10
_MAX_READ = 16 << 20


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = None


def open_in_root(root: str, path: str) -> int:
    """A read-only fd for `path` resolved inside `root`; NotFound when it does not exist."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        how = _OpenHow(os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY, 0, _RESOLVE_IN_ROOT | _RESOLVE_NO_MAGICLINKS)
        fd = _libc.syscall(_SYS_OPENAT2, root_fd, path.lstrip("/").encode() or b".", ctypes.byref(how),
                           ctypes.sizeof(how))
        if fd < 0:
            err = ctypes.get_errno()
            if err == 2:
                raise NotFound(f"{os.path.join(root, path.lstrip('/'))}: no such file")
            if err == 38:
                raise Unsupported("the kernel lacks openat2(2), needed to read files inside a rootfs safely")
            raise OSError(err, os.strerror(err), os.path.join(root, path.lstrip("/")))
        return fd
    finally:
        os.close(root_fd)


def read_in_root(root: str, path: str, limit: int = _MAX_READ) -> bytes | None:
    """The contents of the regular file `path` inside `root`, or None when it is missing."""
    try:
        fd = open_in_root(root, path)
    except NotFound:
        return None
    with os.fdopen(fd, "rb") as f:
        import stat

        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return None
        return f.read(limit)
