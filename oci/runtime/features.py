"""The runtime-spec features document: exactly what oci-run implements, derived from the code's own tables."""

from __future__ import annotations

from oci.runtime.config import MAX_VERSION, MIN_VERSION

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def features() -> dict[str, Any]:
    """The features JSON (features.md, features-linux.md)."""
    from oci.linux import capabilities, mountopts, namespaces, seccomp
    from oci.runtime import hooks

    return {
        "ociVersionMin": ".".join(map(str, MIN_VERSION)),
        "ociVersionMax": ".".join(map(str, MAX_VERSION)),
        "hooks": list(hooks.PHASES),
        "mountOptions": mountopts.MOUNT_OPTIONS,
        "linux": {
            "namespaces": sorted(namespaces.FLAGS),
            "capabilities": list(capabilities.NAMES),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False, "rdma": False},
            "seccomp": {"enabled": True, "actions": list(seccomp.ACTIONS), "operators": sorted(seccomp.OPERATORS),
                        "archs": sorted(seccomp.ARCHES), "knownFlags": sorted(seccomp.FLAGS),
                        "supportedFlags": sorted(seccomp.FLAGS)},
            "apparmor": {"enabled": True},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": True}},
            "netDevices": {"enabled": False},
        },
        "annotations": {"io.github.ocikit.oci-run.version": _version()},
    }


def _version() -> str:
    from oci import __version__

    return __version__
