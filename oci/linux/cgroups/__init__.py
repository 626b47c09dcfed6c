"""Control groups: the container's cgroup on v1 (one directory per hierarchy) or v2 (one directory).

`manager(path)` picks the version from what is mounted; both managers create the
cgroupsPath, move a process in, apply memory and pids limits, list and remove.
"""

from __future__ import annotations

import posixpath

from oci.linux.cgroups.base import Manager, mounted_hierarchies


def manager(path: str) -> Manager:
    """The cgroup manager for `path` (the config's linux.cgroupsPath, made absolute)."""
    hierarchies = mounted_hierarchies()
    if any(kind == "cgroup" for kind, _, _ in hierarchies):
        from oci.linux.cgroups.v1 import V1Manager

        return V1Manager(path, hierarchies)
    from oci.linux.cgroups.v2 import V2Manager

    return V2Manager(path, hierarchies)


def normalize_path(cgroups_path: str | None, container_id: str) -> str:
    """An absolute cgroup path: the config's, a systemd `slice:prefix:name` triple mapped, or a default."""
    if not cgroups_path:
        return f"/oci-run/{container_id}"
    if ":" in cgroups_path and not cgroups_path.startswith("/"):
        slice_name, prefix, name = (cgroups_path.split(":") + ["", ""])[:3]
        unit = f"{prefix}-{name}.scope" if prefix else f"{name}.scope"
        return posixpath.normpath("/" + "/".join(p for p in (slice_name or "system.slice", unit) if p))
    # Lexically, as runc cleans it: `..` cannot climb above the hierarchy's root.
    return posixpath.normpath("/" + cgroups_path.strip("/"))


__all__ = ["Manager", "manager", "normalize_path"]
