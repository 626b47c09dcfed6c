"""libc through ctypes, bound once: the functions oci.linux.kernel.Kernel calls, their argument types,
and the structures the kernel takes. Nothing else in ocikit loads libc.

Imported by Kernel on its first call that needs it (see oci.linux.kernel for why not before).
Functions get `argtypes` here, so a call passes plain ints and bytes (and costs half as much:
prctl runs ~100 times per container start); prctl, variadic in glibc, takes its four integer
arguments as fixed ones, which x86_64 passes alike. syscall and ioctl, whose arguments vary,
take ctypes values at the call.
"""

from __future__ import annotations

import ctypes
import os
from ctypes import c_char_p, c_int, c_size_t, c_uint32, c_uint64, c_ulong, c_void_p

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.mount.argtypes = (c_char_p, c_char_p, c_char_p, c_ulong, c_char_p)
libc.umount2.argtypes = (c_char_p, c_int)
libc.unshare.argtypes = (c_int,)
libc.setns.argtypes = (c_int, c_int)
libc.sethostname.argtypes = (c_char_p, c_size_t)
libc.setdomainname.argtypes = (c_char_p, c_size_t)
libc.personality.argtypes = (c_ulong,)
libc.prlimit.argtypes = (c_int, c_int, c_void_p, c_void_p)
libc.prctl.argtypes = (c_int, c_ulong, c_ulong, c_ulong, c_ulong)
libc.syncfs.argtypes = (c_int,)

# the types and helpers Kernel's methods use, under one name
long, uint, cint, ulong, size_t = ctypes.c_long, ctypes.c_uint, c_int, c_ulong, c_size_t
byref, sizeof, get_errno, string_buffer = ctypes.byref, ctypes.sizeof, ctypes.get_errno, ctypes.create_string_buffer

# x86_64 numbers of the calls glibc has no wrapper for (openat2's is the same everywhere)
SYS_PIVOT_ROOT = 155
SYS_CAPGET = 125
SYS_CAPSET = 126
SYS_IOPRIO_SET = 251
SYS_SCHED_SETATTR = 314
SYS_BPF = 321
SYS_OPEN_TREE = 428
SYS_MOVE_MOUNT = 429
SYS_CLOSE_RANGE = 436
SYS_OPENAT2 = 437
SYS_MOUNT_SETATTR = 442
LINUX_CAPABILITY_VERSION_3 = 0x20080522


def fail(name: str, filename: str | None = None) -> OSError:
    """The OSError of the call that just failed: errno, its text prefixed with the call's name."""
    err = ctypes.get_errno()
    return OSError(err, f"{name}: {os.strerror(err)}", filename)


def check(name: str, result: int) -> int:
    """`result` of a call that returns -1 (and sets errno) on failure."""
    if result < 0:
        raise fail(name)
    return result


class CapHeader(ctypes.Structure):
    _fields_ = [("version", c_uint32), ("pid", c_int)]


class CapData(ctypes.Structure):
    _fields_ = [("effective", c_uint32), ("permitted", c_uint32), ("inheritable", c_uint32)]


class Rlimit(ctypes.Structure):
    _fields_ = [("rlim_cur", c_uint64), ("rlim_max", c_uint64)]


class SchedAttr(ctypes.Structure):
    """struct sched_attr (SCHED_ATTR_SIZE_VER1)."""

    _fields_ = [("size", c_uint32), ("sched_policy", c_uint32), ("sched_flags", c_uint64),
                ("sched_nice", ctypes.c_int32), ("sched_priority", c_uint32), ("sched_runtime", c_uint64),
                ("sched_deadline", c_uint64), ("sched_period", c_uint64), ("sched_util_min", c_uint32),
                ("sched_util_max", c_uint32)]


class MountAttr(ctypes.Structure):
    """struct mount_attr."""

    _fields_ = [("attr_set", c_uint64), ("attr_clr", c_uint64), ("propagation", c_uint64),
                ("userns_fd", c_uint64)]


class OpenHow(ctypes.Structure):
    """struct open_how (openat2)."""

    _fields_ = [("flags", c_uint64), ("mode", c_uint64), ("resolve", c_uint64)]
