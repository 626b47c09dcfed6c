"""A default seccomp profile with the intent of Docker's, in the runtime-spec's JSON.

An allow-list: every system call libseccomp knows for the host's architectures is allowed
except the dangerous ones below, which stay refused (EPERM) unless the container holds the
capability that makes them legitimate. `personality` is limited to the harmless personas,
`clone` to calls that create no namespace, `clone3` answers ENOSYS (so libcs fall back to
`clone`, whose flags can be inspected) and `socket` refuses AF_VSOCK.
"""

from __future__ import annotations

import os
import platform
from typing import Any

EPERM, ENOSYS = 1, 38
AF_VSOCK = 40
PTRACE_MIN_KERNEL = (4, 8)  # before 4.8, ptrace could bypass seccomp
# CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET
CLONE_NAMESPACE_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
PERSONAS = [0x0, 0x0008, 0x20000, 0x20008, 0xFFFFFFFF]  # PER_LINUX, PER_LINUX32, UNAME26, both, query

# Refused whatever the capabilities.
ALWAYS_REFUSED = frozenset({
    "kexec_load", "kexec_file_load", "add_key", "keyctl", "request_key", "create_module", "get_kernel_syms",
    "query_module", "nfsservctl", "uselib", "_sysctl", "sysfs", "ustat", "vm86", "vm86old", "afs_syscall",
    "tuxcall", "security", "getpmsg", "putpmsg", "vserver", "lookup_dcookie", "userfaultfd",
})

# Refused unless the container holds the capability.
GATED = {
    "CAP_SYS_ADMIN": {"mount", "umount", "umount2", "unshare", "setns", "pivot_root", "fsopen", "fsconfig",
                      "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr", "fanotify_init",
                      "name_to_handle_at", "quotactl", "quotactl_fd", "sethostname", "setdomainname", "swapon",
                      "swapoff", "bpf", "perf_event_open", "syslog"},
    "CAP_BPF": {"bpf"},
    "CAP_PERFMON": {"perf_event_open"},
    "CAP_SYSLOG": {"syslog"},
    "CAP_DAC_READ_SEARCH": {"open_by_handle_at"},
    "CAP_SYS_BOOT": {"reboot"},
    "CAP_SYS_MODULE": {"init_module", "finit_module", "delete_module"},
    "CAP_SYS_PACCT": {"acct"},
    "CAP_SYS_PTRACE": {"ptrace", "kcmp", "pidfd_getfd", "process_vm_readv", "process_vm_writev", "process_madvise"},
    "CAP_SYS_RAWIO": {"iopl", "ioperm"},
    "CAP_SYS_TIME": {"settimeofday", "stime", "clock_settime", "clock_settime64"},
    "CAP_SYS_TTY_CONFIG": {"vhangup"},
    "CAP_SYS_NICE": {"get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"},
}
CONDITIONAL = frozenset({"personality", "clone", "clone3", "socket"})

# uname -m -> the seccomp architectures of its native and compat ABIs.
ARCHITECTURES = {
    "x86_64": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "aarch64": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
    "armv7l": ["SCMP_ARCH_ARM"],
    "ppc64le": ["SCMP_ARCH_PPC64LE"],
    "s390x": ["SCMP_ARCH_S390X", "SCMP_ARCH_S390"],
    "riscv64": ["SCMP_ARCH_RISCV64"],
}


def known_syscalls(architectures: list[str]) -> set[str]:
    """Every system call name libseccomp knows for these architectures."""
    import seccomp

    names: set[str] = set()
    for arch_name in architectures:
        arch = getattr(seccomp.Arch, arch_name.removeprefix("SCMP_ARCH_"), None)
        if arch is None:
            continue
        misses = 0
        for number in range(0, 1024):
            try:
                names.add(seccomp.resolve_syscall(arch, number).decode())
                misses = 0
            except (ValueError, RuntimeError, OSError):
                misses += 1
            if misses > 128 and number > 512:
                break
    return names


def refused(caps: set[str], kernel: tuple[int, int]) -> set[str]:
    """The dangerous calls a container with `caps` on `kernel` may not make."""
    denied = set(ALWAYS_REFUSED)
    for calls in GATED.values():
        denied |= calls
    for cap, calls in GATED.items():
        if cap in caps:
            denied -= calls
    if kernel >= PTRACE_MIN_KERNEL:
        denied.discard("ptrace")
    return denied


def kernel_version() -> tuple[int, int]:
    """The running kernel's (major, minor)."""
    parts = os.uname().release.split(".")
    try:
        return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)
    except (IndexError, ValueError):
        return (0, 0)


def default_profile(caps: list[str], machine: str | None = None,
                    kernel: tuple[int, int] | None = None) -> dict[str, Any]:
    """The profile for a container holding `caps`, as `linux.seccomp` of a runtime config."""
    machine = machine or platform.machine()
    architectures = ARCHITECTURES.get(machine, [])
    if not architectures:
        from oci.errors import Unsupported

        raise Unsupported(f"no default seccomp profile for architecture {machine}")
    held = set(caps)
    allowed = known_syscalls(architectures) - refused(held, kernel or kernel_version()) - CONDITIONAL
    rules: list[dict[str, Any]] = [{"names": sorted(allowed), "action": "SCMP_ACT_ALLOW"}]
    rules += [{"names": ["personality"], "action": "SCMP_ACT_ALLOW",
               "args": [{"index": 0, "value": persona, "op": "SCMP_CMP_EQ"}]} for persona in PERSONAS]
    rules.append({"names": ["socket"], "action": "SCMP_ACT_ALLOW",
                  "args": [{"index": 0, "value": AF_VSOCK, "op": "SCMP_CMP_NE"}]})
    if "CAP_SYS_ADMIN" in held:
        rules.append({"names": ["clone", "clone3"], "action": "SCMP_ACT_ALLOW"})
    else:
        flags_index = 1 if machine in ("s390x",) else 0
        rules.append({"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                      "args": [{"index": flags_index, "value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0,
                                "op": "SCMP_CMP_MASKED_EQ"}]})
        rules.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS})
    return {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": EPERM, "architectures": architectures,
            "syscalls": rules}


# uname -m -> the architecture names Docker's profiles use in includes/excludes
DOCKER_ARCHES = {"x86_64": {"amd64", "x86", "x32"}, "aarch64": {"arm64", "arm"}, "armv7l": {"arm"},
                 "ppc64le": {"ppc64le"}, "s390x": {"s390x", "s390"}, "riscv64": {"riscv64"}}


def is_docker_format(profile: Any) -> bool:
    """True for a profile in Docker's format (archMap, includes/excludes) rather than the runtime-spec's."""
    if not isinstance(profile, dict):
        return False
    rules = profile.get("syscalls") or []
    return "archMap" in profile or any(isinstance(r, dict) and ({"includes", "excludes", "name"} & r.keys())
                                       for r in rules)


def from_docker(profile: dict[str, Any], caps: list[str], machine: str | None = None,
                kernel: tuple[int, int] | None = None) -> dict[str, Any]:
    """A Docker-format profile evaluated for this container (caps, architecture, kernel) as `linux.seccomp`."""
    machine = machine or platform.machine()
    kernel = kernel or kernel_version()
    arches = DOCKER_ARCHES.get(machine, set())
    held = set(caps)
    result = {k: v for k, v in profile.items() if k not in ("archMap", "syscalls") and v is not None}
    for entry in profile.get("archMap") or []:
        if entry.get("architecture") in ARCHITECTURES.get(machine, []):
            result["architectures"] = [entry["architecture"], *entry.get("subArchitectures", [])]
    rules = []
    for rule in profile.get("syscalls") or []:
        if not isinstance(rule, dict) or not _applies(rule.get("includes") or {}, rule.get("excludes") or {},
                                                      held, arches, kernel):
            continue
        kept = {k: v for k, v in rule.items()
                if k not in ("includes", "excludes", "comment", "name") and v is not None}  # Docker writes nulls
        if "name" in rule:
            kept["names"] = [rule["name"], *kept.get("names", [])]
        rules.append(kept)
    result["syscalls"] = rules
    return result


def _applies(includes: dict[str, Any], excludes: dict[str, Any], caps: set[str], arches: set[str],
             kernel: tuple[int, int]) -> bool:
    if includes.get("arches") and not arches & set(includes["arches"]):
        return False
    if includes.get("caps") and not caps & set(includes["caps"]):
        return False
    if includes.get("minKernel"):
        wanted = tuple(int(p) for p in str(includes["minKernel"]).split(".")[:2] if p.isdigit())
        if kernel < wanted:
            return False
    if excludes.get("arches") and arches & set(excludes["arches"]):
        return False
    return not (excludes.get("caps") and caps & set(excludes["caps"]))
