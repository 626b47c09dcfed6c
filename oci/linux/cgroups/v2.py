"""cgroup v2: one directory in the unified hierarchy; memory, pids, cpu, cpuset and io limits."""

from __future__ import annotations

import os

from oci.linux.cgroups.base import (
    DEFAULT_ALLOWED,
    CgroupError,
    Manager,
    read_int,
    read_keyed,
    rmdir_retry,
    wait_for,
    write,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


# linux.resources.blockIO throttles -> io.max keys
IO_MAX_KEYS = {"throttleReadBpsDevice": "rbps", "throttleWriteBpsDevice": "wbps",
               "throttleReadIOPSDevice": "riops", "throttleWriteIOPSDevice": "wiops"}

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

    def apply(self, resources: dict[str, Any], notes: list[str] | None = None) -> None:
        if resources.get("devices"):
            from oci.linux.cgroups import devices_bpf

            devices_bpf.attach(self.dir, [*resources["devices"], *DEFAULT_ALLOWED])
        memory = {key: value for key, value in (resources.get("memory") or {}).items()
                  if key in ("limit", "reservation", "swap")}
        for key, why in (("swappiness", "cgroup v2 has no memory.swappiness"),
                         ("disableOOMKiller", "cgroup v2 has no memory.oom_control")):
            if (resources.get("memory") or {}).get(key) not in (None, False, -1) and notes is not None:
                notes.append(f"/linux/resources/memory/{key}: ignored: {why} (as runc ignores it)")
        network = resources.get("network") or {}
        if (network.get("classID") or network.get("priorities")) and notes is not None:
            notes.append("/linux/resources/network: ignored: cgroup v2 has no net_cls nor net_prio (as runc "
                         "ignores it)")
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
        self._write_cpu(resources.get("cpu") or {}, live=False)
        self._write_block_io(resources.get("blockIO") or {}, notes)
        for i, entry in enumerate(resources.get("hugepageLimits") or []):
            self._write_file("hugetlb", f"hugetlb.{entry['pageSize']}.max", _value(entry["limit"]),
                             f"/linux/resources/hugepageLimits/{i}")
        pids = resources.get("pids") or {}
        if "limit" in pids:
            self._enable("pids")
            write(os.path.join(self.dir, "pids.max"), _value(pids["limit"]))
        self._write_unified(resources.get("unified") or {})

    def _write_file(self, controller: str, name: str, value: str, pointer: str) -> None:
        """Write a controller's file (enabling the controller); CgroupError if the kernel has no such file."""
        path = os.path.join(self.dir, name)
        if not os.path.exists(path):
            try:
                self._enable(controller)
            except CgroupError:
                pass
            if not os.path.exists(path):
                raise CgroupError(f"cgroup: {pointer}: this kernel has no {name}")
        write(path, value)

    def _write_cpu(self, cpu: dict[str, Any], live: bool) -> None:
        """cpu.weight and cpu.max from shares, quota and period, cpu.max.burst, cpu.idle, cpuset.cpus and .mems;
        0 or "" leaves a value alone, as runc. On a `live` cgroup, a quota or period given alone keeps the
        other one. Realtime limits have no cgroup v2 file: refused, as runc refuses them."""
        cpu = {key: value for key, value in cpu.items() if value}
        if cpu.keys() & {"realtimePeriod", "realtimeRuntime"}:
            raise CgroupError("cgroup: /linux/resources/cpu/realtimeRuntime: cgroup v2 has no realtime cpu limits")
        if "burst" in cpu:
            self._write_file("cpu", "cpu.max.burst", str(cpu["burst"]), "/linux/resources/cpu/burst")
        if "idle" in cpu:
            self._write_file("cpu", "cpu.idle", str(cpu["idle"]), "/linux/resources/cpu/idle")
        if cpu.keys() & {"shares", "quota", "period"}:
            self._enable("cpu")
        if "shares" in cpu:  # runc's mapping of v1 shares [2, 262144] onto cpu.weight [1, 10000]
            write(os.path.join(self.dir, "cpu.weight"), str(1 + ((cpu["shares"] - 2) * 9999) // 262142))
        if "quota" in cpu or "period" in cpu:
            quota, period = cpu.get("quota", -1), cpu.get("period", 100000)
            if live and not ("quota" in cpu and "period" in cpu):
                with open(os.path.join(self.dir, "cpu.max")) as f:
                    current_quota, current_period = f.read().split()
                quota = cpu.get("quota", -1 if current_quota == "max" else int(current_quota))
                period = cpu.get("period", int(current_period))
            write(os.path.join(self.dir, "cpu.max"), f"{quota if quota > 0 else 'max'} {period}")
        if cpu.keys() & {"cpus", "mems"}:
            self._enable("cpuset")
            for key in ("cpus", "mems"):
                if key in cpu:
                    write(os.path.join(self.dir, f"cpuset.{key}"), cpu[key])

    def _write_block_io(self, block_io: dict[str, Any], notes: list[str] | None = None) -> None:
        """Weights (BFQ's io.bfq.weight as given, else io.weight with runc's conversion from [10, 1000] to
        [1, 10000]), per-device weights (io.bfq.weight), and io.max, one line per device with the limits the
        throttles give (a rate of 0: max). Leaf weights have no cgroup v2 file: noted, as runc ignores them."""
        weight = block_io.get("weight")
        if weight:
            bfq = os.path.join(self.dir, "io.bfq.weight")
            if os.path.exists(bfq):
                write(bfq, str(weight))
            else:
                self._write_file("io", "io.weight", str(1 + (weight - 10) * 9999 // 990),
                                 "/linux/resources/blockIO/weight")
        for i, entry in enumerate(block_io.get("weightDevice") or []):
            if entry.get("weight"):
                self._write_file("io", "io.bfq.weight", f"{entry['major']}:{entry['minor']} {entry['weight']}",
                                 f"/linux/resources/blockIO/weightDevice/{i}")
        if (block_io.get("leafWeight") or any(e.get("leafWeight") for e in block_io.get("weightDevice") or [])) \
                and notes is not None:
            notes.append("/linux/resources/blockIO/leafWeight: ignored: cgroup v2 has no leaf weights (as runc "
                         "ignores them)")
        limits: dict[str, list[str]] = {}
        for key, name in IO_MAX_KEYS.items():
            for entry in block_io.get(key) or []:
                limits.setdefault(f"{entry['major']}:{entry['minor']}", []).append(
                    f"{name}={entry['rate'] or 'max'}")
        if limits:
            self._enable("io")
            for device, values in limits.items():
                write(os.path.join(self.dir, "io.max"), " ".join([device, *values]))

    def _write_unified(self, unified: dict[str, str]) -> None:
        """linux.resources.unified: each key a file of the container's cgroup, written last so that
        it has the final word, its controller enabled first. Keys of the cgroup core (cgroup.*),
        which move processes or change the tree, are refused, and so is anything but a plain
        `controller.name`."""
        for key, value in unified.items():
            controller, dot, name = key.partition(".")
            if not (controller.isalnum() and dot and name) or "/" in key or controller == "cgroup":
                raise CgroupError(f"cgroup: /linux/resources/unified/{key}: not a controller's interface file")
            path = os.path.join(self.dir, key)
            if not os.path.exists(path):
                try:
                    self._enable(controller)
                except CgroupError:
                    raise CgroupError(f"cgroup: /linux/resources/unified/{key}: the {controller} controller "
                                      "is not available") from None
                if not os.path.exists(path):
                    raise CgroupError(f"cgroup: /linux/resources/unified/{key}: no such file in {self.dir}")
            write(path, value)

    def pids(self) -> list[int]:
        return self._read_pids(os.path.join(self.dir, "cgroup.procs"))

    def destroy(self) -> None:
        rmdir_retry(self.dir)

    def mount_binds(self) -> list[tuple[str, str]]:
        return [("", self.dir)]

    # Pause, resume, update and statistics.

    def freezer_file(self) -> str:
        return os.path.join(self.dir, "cgroup.freeze")

    def _settle(self, frozen: int, what: str) -> None:
        events = os.path.join(self.dir, "cgroup.events")
        wait_for(lambda: read_keyed(events).get("frozen") == frozen, f"{what} {self.dir}")

    def freeze(self) -> None:
        write(self.freezer_file(), "1")
        self._settle(1, "freeze")

    def thaw(self) -> None:
        write(self.freezer_file(), "0")
        self._settle(0, "thaw")

    def update(self, resources: dict[str, Any]) -> None:
        memory = resources.get("memory") or {}
        if memory:
            self._enable("memory")
            limit, swap = memory.get("limit"), memory.get("swap")
            if limit is not None:
                write(os.path.join(self.dir, "memory.max"), _value(limit))
            if "reservation" in memory:
                write(os.path.join(self.dir, "memory.low"), _value(memory["reservation"]))
            if swap is not None:
                # The spec's swap is memory+swap; memory.swap.max counts swap alone.
                swap_file = os.path.join(self.dir, "memory.swap.max")
                current = limit if limit is not None else read_int(os.path.join(self.dir, "memory.max"), -1)
                if swap != -1 and current <= 0:
                    raise CgroupError("cgroup: /memory/swap: needs a memory limit (memory+swap)")
                if not os.path.exists(swap_file):
                    if swap not in (-1, current):
                        raise CgroupError("cgroup: /memory/swap: swap accounting is off")
                else:
                    write(swap_file, "max" if swap == -1 else str(swap - current))
        self._write_cpu(resources.get("cpu") or {}, live=True)
        self._write_block_io(resources.get("blockIO") or {})
        pids = resources.get("pids") or {}
        if "limit" in pids:
            self._enable("pids")
            write(os.path.join(self.dir, "pids.max"), _value(pids["limit"]))
        self._write_unified(resources.get("unified") or {})

    def oom_kills(self) -> int:
        return read_keyed(os.path.join(self.dir, "memory.events")).get("oom_kill", 0)

    def stats(self) -> dict[str, Any]:
        def path(name: str) -> str:
            return os.path.join(self.dir, name)

        unlimited = (1 << 64) - 1
        raw = read_keyed(path("memory.stat"))
        usage = {"limit": read_int(path("memory.max"), unlimited), "usage": read_int(path("memory.current")),
                 "max": read_int(path("memory.peak")), "failcnt": read_keyed(path("memory.events")).get("max", 0)}
        swap_limit = read_int(path("memory.swap.max"), unlimited)
        # As runc reports it: swap is memory+swap, the meaning it has on cgroup v1.
        swap = {"limit": unlimited if unlimited in (swap_limit, usage["limit"]) else swap_limit + usage["limit"],
                "usage": read_int(path("memory.swap.current")) + usage["usage"], "failcnt": 0}
        cpu_stat = read_keyed(path("cpu.stat"))
        return {
            "cpu": {"usage": {"total": cpu_stat.get("usage_usec", 0) * 1000,
                              "kernel": cpu_stat.get("system_usec", 0) * 1000,
                              "user": cpu_stat.get("user_usec", 0) * 1000},
                    "throttling": {"periods": cpu_stat.get("nr_periods", 0),
                                   "throttledPeriods": cpu_stat.get("nr_throttled", 0),
                                   "throttledTime": cpu_stat.get("throttled_usec", 0) * 1000}},
            "memory": {"cache": raw.get("file", 0), "usage": usage, "swap": swap, "raw": raw},
            "pids": {"current": read_int(path("pids.current")), "limit": read_int(path("pids.max"))},
        }


def _value(limit: int) -> str:
    return "max" if limit <= 0 else str(limit)
