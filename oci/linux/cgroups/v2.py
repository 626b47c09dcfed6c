"""cgroup v2: one directory in the unified hierarchy; memory and pids limits."""

from __future__ import annotations

import os

from oci.linux.cgroups.base import DEFAULT_ALLOWED, CgroupError, Manager, rmdir_retry, write

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class V2Manager(Manager):
    """The container's directory under the cgroup2 mount."""

    @property
    def root(self) -> str:
        for fstype, mountpoint, _ in self.hierarchies:
            if fstype == "cgroup2":
                return mountpoint
        raise CgroupError("cgroup: no cgroup2 file system is mounted")

    @property
    def dir(self) -> str:
        return self.root + self.path

    def create(self) -> None:
        try:
            os.makedirs(self.dir, 0o755, exist_ok=True)
        except OSError as err:
            raise CgroupError(f"cgroup: create {self.dir}: {err.strerror}") from None

    def _enable(self, controller: str) -> None:
        current = self.root
        for part in self.path.strip("/").split("/"):
            control = os.path.join(current, "cgroup.subtree_control")
            with open(control) as f:
                enabled = f.read().split()
            if controller not in enabled:
                write(control, "+" + controller)
            current = os.path.join(current, part)

    def join(self, pid: int) -> None:
        write(os.path.join(self.dir, "cgroup.procs"), str(pid))

    def apply(self, resources: dict[str, Any]) -> None:
        if resources.get("devices"):
            from oci.linux.cgroups import devices_bpf

            devices_bpf.attach(self.dir, [*resources["devices"], *DEFAULT_ALLOWED])
        memory = resources.get("memory") or {}
        if memory:
            self._enable("memory")
            if "limit" in memory:
                write(os.path.join(self.dir, "memory.max"), _value(memory["limit"]))
            if "reservation" in memory:
                write(os.path.join(self.dir, "memory.low"), _value(memory["reservation"]))
            if "swap" in memory:
                swap = memory["swap"]
                if swap != -1 and "limit" in memory and memory["limit"] != -1:
                    swap -= memory["limit"]
                swap_file = os.path.join(self.dir, "memory.swap.max")
                if os.path.exists(swap_file):
                    write(swap_file, _value(swap))
                elif swap not in (-1, 0):
                    raise CgroupError("cgroup: /linux/resources/memory/swap: swap accounting is off")
        pids = resources.get("pids") or {}
        if "limit" in pids:
            self._enable("pids")
            write(os.path.join(self.dir, "pids.max"), _value(pids["limit"]))

    def pids(self) -> list[int]:
        return self._read_pids(os.path.join(self.dir, "cgroup.procs"))

    def destroy(self) -> None:
        rmdir_retry(self.dir)

    def mount_binds(self) -> list[tuple[str, str]]:
        return [("", self.dir)]


def _value(limit: int) -> str:
    return "max" if limit <= 0 else str(limit)
