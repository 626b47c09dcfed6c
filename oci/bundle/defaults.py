"""Docker-like secure defaults for a Linux container config."""

from __future__ import annotations

from typing import Any

from oci.linux.capabilities import DOCKER_DEFAULT_CAPS
from oci.linux.capabilities import NAMES as ALL_CAPS  # every capability, in the kernel's numbering
from oci.linux.hardening import MASKED_PATHS, READONLY_PATHS
from oci.runtime.defaults import standard_mounts

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_NOFILE = 1024
NAMESPACES = ["pid", "network", "ipc", "uts", "mount", "cgroup"]


def _own_caps(field: str) -> list[str]:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            last = int(f.read())
    except (OSError, ValueError):
        last = len(ALL_CAPS) - 1
    mask = (1 << (last + 1)) - 1
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    mask = int(line.split()[1], 16)
    except OSError:
        pass
    return [cap for number, cap in enumerate(ALL_CAPS[: last + 1]) if mask >> number & 1]


def host_caps() -> list[str]:
    """The capabilities this host can grant: known to the kernel and in our bounding set."""
    return _own_caps("CapBnd")


def effective_caps() -> list[str]:
    """The capabilities this process holds now."""
    return _own_caps("CapEff")


def mounts() -> list[dict[str, Any]]:
    """`runc spec`'s standard mounts, with /proc nosuid, noexec and nodev as Docker mounts it."""
    found = standard_mounts()
    found[0] = {**found[0], "options": ["nosuid", "noexec", "nodev"]}
    return found


def rlimits() -> list[dict[str, Any]]:
    """RLIMIT_NOFILE 1024/1024 like `runc spec`, never above our own hard limit (we cannot raise it)."""
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    value = DEFAULT_NOFILE if hard == resource.RLIM_INFINITY else min(DEFAULT_NOFILE, hard)
    return [{"type": "RLIMIT_NOFILE", "hard": value, "soft": value}]


def base_config(oci_version: str) -> dict[str, Any]:
    """A complete Linux config with Docker-like defaults, to be filled by conversion and options."""
    caps = list(DOCKER_DEFAULT_CAPS)
    return {
        "ociVersion": oci_version,
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": [],
            "env": [],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": list(caps), "permitted": list(caps)},
            "rlimits": rlimits(),
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": False},
        "hostname": "",
        "mounts": mounts(),
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in NAMESPACES],
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
        },
    }
