"""cgroup v1: one directory per mounted hierarchy; memory and pids limits."""

from __future__ import annotations

import os

from oci.linux.cgroups.base import DEFAULT_ALLOWED, CgroupError, Manager, rmdir_retry, write

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class V1Manager(Manager):
    """The container's directory in every v1 hierarchy (and the unified one of a hybrid host)."""

    def dirs(self) -> list[tuple[str, str, set[str]]]:
        return [(mountpoint, mountpoint + self.path, controllers)
                for _, mountpoint, controllers in self.hierarchies]

    def controller_dir(self, controller: str) -> str | None:
        for _, path, controllers in self.dirs():
            if controller in controllers:
                return path
        return None

    def create(self) -> None:
        for mountpoint, _path, controllers in self.dirs():
            current = mountpoint
            for part in self.path.strip("/").split("/"):
                parent, current = current, os.path.join(current, part)
                if os.path.isdir(current):
                    continue
                try:
                    os.mkdir(current, 0o755)
                except FileExistsError:
                    pass
                except OSError as err:
                    raise CgroupError(f"cgroup: create {current}: {err.strerror}") from None
                if "cpuset" in controllers:
                    for name in ("cpuset.cpus", "cpuset.mems"):
                        with open(os.path.join(parent, name)) as f:
                            write(os.path.join(current, name), f.read().strip())

    def join(self, pid: int) -> None:
        for _, path, _ in self.dirs():
            write(os.path.join(path, "cgroup.procs"), str(pid))

    def apply(self, resources: dict[str, Any]) -> None:
        memory = resources.get("memory") or {}
        if memory:
            folder = self.controller_dir("memory")
            if folder is None:
                raise CgroupError("cgroup: the memory controller is not mounted")
            if "limit" in memory:
                write(os.path.join(folder, "memory.limit_in_bytes"), str(memory["limit"]))
            if "reservation" in memory:
                write(os.path.join(folder, "memory.soft_limit_in_bytes"), str(memory["reservation"]))
            if "swap" in memory:
                swap_file = os.path.join(folder, "memory.memsw.limit_in_bytes")
                if not os.path.exists(swap_file):
                    if memory["swap"] not in (-1, memory.get("limit")):
                        raise CgroupError("cgroup: /linux/resources/memory/swap: swap accounting is off")
                else:
                    write(swap_file, str(memory["swap"]))
        pids = resources.get("pids") or {}
        if "limit" in pids:
            folder = self.controller_dir("pids")
            if folder is None:
                raise CgroupError("cgroup: the pids controller is not mounted")
            write(os.path.join(folder, "pids.max"), "max" if pids["limit"] <= 0 else str(pids["limit"]))
        devices = resources.get("devices")
        if devices:
            folder = self.controller_dir("devices")
            if folder is None:
                raise CgroupError("cgroup: the devices controller is not mounted")
            for rule in [*devices, *DEFAULT_ALLOWED]:
                kind = rule.get("type", "a")
                major = "*" if rule.get("major", -1) in (-1, None) else rule["major"]
                minor = "*" if rule.get("minor", -1) in (-1, None) else rule["minor"]
                line = "a" if kind == "a" and major == "*" and minor == "*" else f"{kind} {major}:{minor}"
                line += f" {rule.get('access', 'rwm')}" if line != "a" else ""
                write(os.path.join(folder, "devices.allow" if rule["allow"] else "devices.deny"), line)

    def pids(self) -> list[int]:
        folder = self.controller_dir("pids") or self.controller_dir("memory") or self.dirs()[0][1]
        return self._read_pids(os.path.join(folder, "cgroup.procs"))

    def destroy(self) -> None:
        for _, path, _ in self.dirs():
            rmdir_retry(path)

    def mount_binds(self) -> list[tuple[str, str]]:
        binds = []
        for mountpoint, path, _ in self.dirs():
            binds.append((os.path.basename(mountpoint), path))
        base = os.path.dirname(self.hierarchies[0][1])
        try:
            for name in os.listdir(base):
                full = os.path.join(base, name)
                if os.path.islink(full):
                    binds.append((name, "->" + os.readlink(full)))
        except OSError:
            pass
        return binds
