"""The rootfs oci-unpack handed over: a directory, or an overlay mount it described but did not make."""

from __future__ import annotations

import os
from typing import Any

from oci.errors import InvalidInput


def check_mount(mount: Any, rootfs: str) -> dict[str, Any]:
    """The `mount` object of oci-unpack's output, checked to be an overlay onto `rootfs`."""
    if not isinstance(mount, dict) or mount.get("type") != "overlay" or not isinstance(mount.get("options"), list) \
            or not all(isinstance(o, str) for o in mount["options"]):
        raise InvalidInput("<stdin>: /mount: expected {type: overlay, source, destination, options: [...]}")
    if os.path.abspath(str(mount.get("destination", ""))) != os.path.abspath(rootfs):
        raise InvalidInput("<stdin>: /mount/destination: is not the rootfs")
    return mount


def ensure_mounted(mount: dict[str, Any], rootfs: str) -> None:
    """Mount the overlay at `rootfs` unless something is mounted there already."""
    from oci.linux import overlayfs

    if os.path.ismount(rootfs):
        return
    os.makedirs(rootfs, exist_ok=True)
    overlayfs.mount(rootfs, mount["options"], source=str(mount.get("source", "overlay")))
