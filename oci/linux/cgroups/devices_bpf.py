"""Device rules on cgroup v2: a BPF_PROG_TYPE_CGROUP_DEVICE program built from linux.resources.devices.

The rules keep cgroup v1's meaning: they apply in order onto a default, so the last rule that
matches a device decides. The program checks them from last to first and returns on the first
match; with no match the device is refused.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct

from oci.linux.cgroups.base import CgroupError
from oci.linux.kernel import kernel

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

BPF_PROG_LOAD, BPF_PROG_ATTACH, BPF_PROG_DETACH, BPF_PROG_GET_FD_BY_ID, BPF_PROG_QUERY = 5, 8, 9, 13, 16
BPF_PROG_TYPE_CGROUP_DEVICE, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI, BPF_F_REPLACE = 15, 6, 2, 4
MAX_PROGRAMS = 64  # BPF_CGROUP_MAX_PROGS: the most programs a cgroup takes for one attach type
DEVICE_TYPES = {"b": 1, "c": 2}
ACCESS_BITS = {"m": 1, "r": 2, "w": 4}

# opcodes
LDX_W, AND32_K, RSH32_K, MOV32_K, MOV32_X, JNE_K, EXIT = 0x61, 0x54, 0x74, 0xB4, 0xBC, 0x55, 0x95


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def program(rules: list[dict[str, Any]]) -> bytes:
    """The BPF instructions for `rules` (linux.resources.devices entries)."""
    insns = [
        _insn(LDX_W, 2, 1, 0), _insn(AND32_K, 2, imm=0xFFFF),  # r2 = device type
        _insn(LDX_W, 3, 1, 0), _insn(RSH32_K, 3, imm=16),  # r3 = requested access
        _insn(LDX_W, 4, 1, 4), _insn(LDX_W, 5, 1, 8),  # r4 = major, r5 = minor
    ]
    for rule in reversed(rules):
        kind = rule.get("type", "a")
        major, minor = rule.get("major"), rule.get("minor")
        access = rule.get("access", "rwm")
        block: list[Any] = []  # instructions, and jumps past the block as tuples until their offset is known
        if kind != "a":
            block.append(("jump", 2, DEVICE_TYPES[kind]))
        if set(access) != set("rwm"):
            bits = sum(ACCESS_BITS[c] for c in set(access))
            block += [_insn(MOV32_X, 1, 3), _insn(AND32_K, 1, imm=bits), ("jump_reg3", 1, 0)]
        if major is not None and major >= 0:
            block.append(("jump", 4, major))
        if minor is not None and minor >= 0:
            block.append(("jump", 5, minor))
        block += [_insn(MOV32_K, 0, imm=1 if rule.get("allow") else 0), _insn(EXIT)]
        for i, item in enumerate(block):
            if isinstance(item, tuple):
                skip = len(block) - i - 1
                if item[0] == "jump":
                    block[i] = _insn(JNE_K, item[1], off=skip, imm=item[2])
                else:  # (r1 & allowed) != r3: some requested access is not granted
                    block[i] = _insn(0x5D, 1, 3, off=skip)  # JNE_X r1, r3
        insns += block
        if kind == "a" and (major is None or major < 0) and (minor is None or minor < 0) and set(access) == set(
                "rwm"):
            break  # an all-devices rule decides everything before it
    else:
        insns += [_insn(MOV32_K, 0, imm=0), _insn(EXIT)]
    return b"".join(insns)


def attach(cgroup_dir: str, rules: list[dict[str, Any]]) -> None:
    """Load the program for `rules` and attach it to the cgroup directory in place of the device
    programs already there, as runc does. The kernel runs every program attached and allows a
    device only if all of them do, so one left behind would keep refusing what new rules allow (a
    second `apply` that loosens them). The new program goes on before the old ones come off: the
    cgroup is never without a filter. A kernel that does not answer the query (older than 4.15)
    gets the new one beside the old, as before."""
    folder = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        prog = _load(rules)
        try:
            _put_in_place(folder, prog)
        finally:
            os.close(prog)
    finally:
        os.close(folder)


def _put_in_place(folder: int, prog: int) -> None:
    """Attach `prog` to the cgroup `folder`, then detach the device programs that were there."""
    old = _attached(folder)
    if old is None:
        _attach(folder, prog)
        return
    try:
        if len(old) == 1 and _replaced(folder, prog, old[0]):
            return
        _attach(folder, prog)
        for fd in old:
            try:
                kernel().bpf(BPF_PROG_DETACH, struct.pack("<III", folder, fd, BPF_CGROUP_DEVICE).ljust(128, b"\0"))
            except OSError as err:
                if err.errno != errno.ENOENT:  # ENOENT: someone else took it off meanwhile
                    raise CgroupError(f"cgroup: /linux/resources/devices: detaching an earlier device program: "
                                      f"{err.strerror}") from None
    finally:
        for fd in old:
            os.close(fd)


def _load(rules: list[dict[str, Any]]) -> int:
    """An fd of the loaded program for `rules`."""
    code = program(rules)
    insns = ctypes.create_string_buffer(code, len(code))
    license_ = ctypes.create_string_buffer(b"Apache")
    log = ctypes.create_string_buffer(65536)
    attr = struct.pack("<IIQQIIQII16s", BPF_PROG_TYPE_CGROUP_DEVICE, len(code) // 8, ctypes.addressof(insns),
                       ctypes.addressof(license_), 1, len(log), ctypes.addressof(log), 0, 0, b"oci_run_devices")
    try:
        return kernel().bpf(BPF_PROG_LOAD, attr.ljust(128, b"\0"))
    except OSError as err:
        detail = log.value.decode(errors="replace").strip().splitlines()[-1:] or [""]
        raise CgroupError(f"cgroup: /linux/resources/devices: loading the device program: {err.strerror} "
                          f"{detail[0]}".rstrip()) from None


def _attached(folder: int) -> list[int] | None:
    """fds of the device programs attached to the cgroup `folder` now; None if the kernel refuses to say.
    Programs an LSM keeps from us are left out, as runc leaves them: they can only refuse more."""
    size = MAX_PROGRAMS  # room for all a kernel takes; ENOSPC (a kernel that takes more) says how many
    for _ in range(3):
        ids = (ctypes.c_uint32 * size)()
        attr = bytearray(struct.pack("<IIIIQI", folder, BPF_CGROUP_DEVICE, 0, 0, ctypes.addressof(ids),
                                     size).ljust(128, b"\0"))
        try:
            kernel().bpf(BPF_PROG_QUERY, attr)
        except OSError as err:
            if err.errno != errno.ENOSPC:
                return None
            size = struct.unpack_from("<I", attr, 24)[0]  # the count the kernel has
            continue
        fds: list[int] = []
        for prog_id in ids[:struct.unpack_from("<I", attr, 24)[0]]:
            try:
                fds.append(kernel().bpf(BPF_PROG_GET_FD_BY_ID, struct.pack("<I", prog_id).ljust(128, b"\0")))
            except OSError as err:
                if err.errno in (errno.EPERM, errno.EACCES, errno.ENOENT):  # ENOENT: gone meanwhile
                    continue
                for fd in fds:
                    os.close(fd)
                raise CgroupError(f"cgroup: /linux/resources/devices: opening an attached device program: "
                                  f"{err.strerror}") from None
        return fds
    raise CgroupError("cgroup: /linux/resources/devices: the attached device programs kept changing")


def _replaced(folder: int, prog: int, old: int) -> bool:
    """Whether `prog` took `old`'s place in one step (BPF_F_REPLACE, Linux 5.6); False leaves both as they were."""
    try:
        kernel().bpf(BPF_PROG_ATTACH, struct.pack("<IIIII", folder, prog, BPF_CGROUP_DEVICE,
                                                  BPF_F_ALLOW_MULTI | BPF_F_REPLACE, old).ljust(128, b"\0"))
        return True
    except OSError:  # EINVAL: an older kernel; ENOENT: `old` went meanwhile. Attach, then detach.
        return False


def _attach(folder: int, prog: int) -> None:
    try:
        kernel().bpf(BPF_PROG_ATTACH, struct.pack("<IIII", folder, prog, BPF_CGROUP_DEVICE,
                                                  BPF_F_ALLOW_MULTI).ljust(128, b"\0"))
    except OSError as err:
        raise CgroupError(f"cgroup: /linux/resources/devices: attaching the device program: {err.strerror}") from None
