"""cgroup v1: one directory per mounted hierarchy; memory, pids, cpu, cpuset and block I/O limits."""

from __future__ import annotations

import os

from oci.linux.cgroups.base import (
    DEFAULT_ALLOWED,
    CgroupError,
    Manager,
    read_int,
    read_keyed,
    read_text,
    remove_tree,
    tree_pids,
    wait_for,
    write,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# A task that cannot be frozen at the moment (in vfork, in some syscalls) keeps the freezer in
# FREEZING: wait a little, thaw and try again, a few times.
FREEZE_ATTEMPTS, FREEZE_WAIT = 10, 0.5


# linux.resources.blockIO throttles -> blkio.throttle.<name>_device
THROTTLES = {"throttleReadBpsDevice": "read_bps", "throttleWriteBpsDevice": "write_bps",
             "throttleReadIOPSDevice": "read_iops", "throttleWriteIOPSDevice": "write_iops"}

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

    def join(self, pid: int, beside: int = 0) -> None:
        for _, path, _ in self.dirs():
            write(os.path.join(path, "cgroup.procs"), str(pid))

    def apply(self, resources: dict[str, Any], notes: list[str] | None = None) -> None:
        self._refuse_unified(resources)
        memory = {key: value for key, value in (resources.get("memory") or {}).items()
                  if key not in ("kernel", "kernelTCP", "useHierarchy", "checkBeforeUpdate")}
        if memory.get("swappiness") in (None, -1):
            memory.pop("swappiness", None)
        if not memory.get("disableOOMKiller"):
            memory.pop("disableOOMKiller", None)
        if memory:
            folder = self._need("memory")
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
            if "swappiness" in memory:
                if not 0 <= memory["swappiness"] <= 100:
                    raise CgroupError(f"cgroup: /linux/resources/memory/swappiness: {memory['swappiness']} is "
                                      "outside 0-100")
                write(os.path.join(folder, "memory.swappiness"), str(memory["swappiness"]))
            if memory.get("disableOOMKiller"):
                write(os.path.join(folder, "memory.oom_control"), "1")
        self._write_cpu(resources.get("cpu") or {}, notes)
        self._write_block_io(resources.get("blockIO") or {})
        self._write_hugepages(resources.get("hugepageLimits") or [])
        self._write_network(resources.get("network") or {})
        pids = resources.get("pids") or {}
        if "limit" in pids:
            pids_dir = self.controller_dir("pids")
            if pids_dir is None:
                raise CgroupError("cgroup: the pids controller is not mounted")
            write(os.path.join(pids_dir, "pids.max"), "max" if pids["limit"] <= 0 else str(pids["limit"]))
        self._write_devices(resources.get("devices") or [])

    def _write_devices(self, devices: list[dict[str, Any]]) -> None:
        """Whatever the config lists (or if it lists nothing), runc's start: no device but the default
        ones, then the config's rules in order; written as the difference from what the cgroup has
        (see devices_v1: a cgroup that already holds processes keeps its devices throughout).
        `update` leaves the device rules alone, as runc's update leaves them as they were."""
        from oci.linux.cgroups import devices_v1  # create's alone: the other verbs load v1 too

        folder = self.controller_dir("devices")
        if folder is None:
            if devices:
                raise CgroupError("cgroup: the devices controller is not mounted")
            return  # as runc: no controller, no rules to keep
        target = devices_v1.from_config([*devices, *DEFAULT_ALLOWED], len(devices))
        current = devices_v1.from_list(read_text(os.path.join(folder, "devices.list")))
        for name, line in devices_v1.transition(current, target):
            write(os.path.join(folder, name), line)

    def pids(self) -> list[int]:
        folder = self.controller_dir("pids") or self.controller_dir("memory") or self.dirs()[0][1]
        return tree_pids(folder)

    def destroy(self) -> None:
        for _, path, _ in self.dirs():
            remove_tree(path)

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

    # Pause, resume, update and statistics.

    @staticmethod
    def _refuse_unified(resources: dict[str, Any]) -> None:
        if resources.get("unified"):
            raise CgroupError("cgroup: /linux/resources/unified: needs cgroup v2 (this host mounts cgroup v1)")

    def _write_block_io(self, block_io: dict[str, Any]) -> None:
        """Weights (blkio.weight, or BFQ's blkio.bfq.weight), per-device weights, and the blkio.throttle.*
        rules, one `MAJOR:MINOR VALUE` per device (a rate of 0 removes one); a weight of 0 changes nothing."""
        if block_io.get("weight"):
            self._write_any("blkio", ("blkio.weight", "blkio.bfq.weight"), str(block_io["weight"]),
                            "/linux/resources/blockIO/weight")
        if block_io.get("leafWeight"):
            self._write_any("blkio", ("blkio.leaf_weight",), str(block_io["leafWeight"]),
                            "/linux/resources/blockIO/leafWeight")
        for i, entry in enumerate(block_io.get("weightDevice") or []):
            device = f"{entry['major']}:{entry['minor']}"
            if entry.get("weight"):
                self._write_any("blkio", ("blkio.weight_device", "blkio.bfq.weight_device"),
                                f"{device} {entry['weight']}", f"/linux/resources/blockIO/weightDevice/{i}")
            if entry.get("leafWeight"):
                self._write_any("blkio", ("blkio.leaf_weight_device",), f"{device} {entry['leafWeight']}",
                                f"/linux/resources/blockIO/weightDevice/{i}")
        for key, name in THROTTLES.items():
            for entry in block_io.get(key) or []:
                write(os.path.join(self._need("blkio"), f"blkio.throttle.{name}_device"),
                      f"{entry['major']}:{entry['minor']} {entry['rate']}")

    def _write_any(self, controller: str, names: tuple[str, ...], value: str, pointer: str) -> None:
        """Write `value` to the first of `names` the controller has; CgroupError if it has none."""
        folder = self._need(controller)
        for name in names:
            path = os.path.join(folder, name)
            if os.path.exists(path):
                write(path, value)
                return
        raise CgroupError(f"cgroup: {pointer}: this kernel has no {' nor '.join(names)}")

    def _write_hugepages(self, limits: list[dict[str, Any]]) -> None:
        """hugetlb.SIZE.limit_in_bytes for each hugepageLimits entry."""
        for i, entry in enumerate(limits):
            self._write_any("hugetlb", (f"hugetlb.{entry['pageSize']}.limit_in_bytes",), str(entry["limit"]),
                            f"/linux/resources/hugepageLimits/{i}")

    def _write_network(self, network: dict[str, Any]) -> None:
        """net_cls.classid and net_prio.ifpriomap (one `IFNAME PRIORITY` per write)."""
        if network.get("classID"):
            self._write_any("net_cls", ("net_cls.classid",), str(network["classID"]),
                            "/linux/resources/network/classID")
        for i, entry in enumerate(network.get("priorities") or []):
            self._write_any("net_prio", ("net_prio.ifpriomap",), f"{entry['name']} {entry['priority']}",
                            f"/linux/resources/network/priorities/{i}")

    def _write_cpu(self, cpu: dict[str, Any], notes: list[str] | None = None) -> None:
        """CPU shares, CFS period, quota and burst, realtime period and runtime, cpuset cpus and mems; 0 or ""
        leaves a value alone, as runc. cpu.idle is cgroup v2's alone: noted, as runc ignores it here."""
        cpu = {key: value for key, value in cpu.items() if value}
        if "idle" in cpu and notes is not None:
            notes.append("/linux/resources/cpu/idle: ignored: cgroup v1 has no cpu.idle (as runc ignores it)")
        if cpu.keys() & {"shares", "period", "quota", "burst", "realtimePeriod", "realtimeRuntime"}:
            folder = self._need("cpu")
            for key, name in (("shares", "cpu.shares"), ("period", "cpu.cfs_period_us"),
                              ("quota", "cpu.cfs_quota_us"), ("realtimePeriod", "cpu.rt_period_us"),
                              ("realtimeRuntime", "cpu.rt_runtime_us")):
                if key in cpu:
                    write(os.path.join(folder, name), str(cpu[key]))
            if "burst" in cpu:
                self._write_any("cpu", ("cpu.cfs_burst_us",), str(cpu["burst"]), "/linux/resources/cpu/burst")
        if cpu.keys() & {"cpus", "mems"}:
            folder = self._need("cpuset")
            for key in ("cpus", "mems"):
                if key in cpu:
                    write(os.path.join(folder, f"cpuset.{key}"), cpu[key])

    def _need(self, controller: str) -> str:
        folder = self.controller_dir(controller)
        if folder is None:
            raise CgroupError(f"cgroup: the {controller} controller is not mounted")
        return folder

    def freezer_file(self) -> str:
        return os.path.join(self._need("freezer"), "freezer.state")

    def freeze(self) -> None:
        state = self.freezer_file()
        for _ in range(FREEZE_ATTEMPTS):
            write(state, "FROZEN")
            try:
                wait_for(lambda: read_text(state) == "FROZEN", f"freeze {state}", FREEZE_WAIT)
                return
            except CgroupError:
                write(state, "THAWED")
        raise CgroupError(f"cgroup: freeze {state}: still FREEZING after {FREEZE_ATTEMPTS} attempts")

    def thaw(self) -> None:
        state = self.freezer_file()
        write(state, "THAWED")
        wait_for(lambda: read_text(state) == "THAWED", f"thaw {state}")

    def update(self, resources: dict[str, Any]) -> None:
        self._refuse_unified(resources)
        memory = resources.get("memory") or {}
        if memory:
            folder = self._need("memory")
            limit_file = os.path.join(folder, "memory.limit_in_bytes")
            swap_file = os.path.join(folder, "memory.memsw.limit_in_bytes")
            limit, swap = memory.get("limit"), memory.get("swap")
            has_swap = os.path.exists(swap_file)
            if limit == -1 and swap is None and has_swap:
                swap = -1  # unlimited memory: unlimited memory+swap too (or the old memsw limit still binds)
            if swap is not None and not has_swap and swap not in (-1, limit):
                raise CgroupError("cgroup: /memory/swap: swap accounting is off")
            writes = [(limit_file, limit), (swap_file if has_swap else "", swap)]
            # The kernel keeps memory.limit <= memsw.limit at every step: raise the larger one first.
            if swap is not None and (swap == -1 or swap >= read_int(limit_file)):
                writes.reverse()
            for path, value in writes:
                if path and value is not None:
                    write(path, str(value))
            if "reservation" in memory:
                write(os.path.join(folder, "memory.soft_limit_in_bytes"), str(memory["reservation"]))
        self._write_cpu(resources.get("cpu") or {})
        self._write_block_io(resources.get("blockIO") or {})
        pids = resources.get("pids") or {}
        if "limit" in pids:
            write(os.path.join(self._need("pids"), "pids.max"), "max" if pids["limit"] <= 0 else str(pids["limit"]))

    def oom_kills(self) -> int:
        folder = self.controller_dir("memory")
        return read_keyed(os.path.join(folder, "memory.oom_control")).get("oom_kill", 0) if folder else 0

    def stats(self) -> dict[str, Any]:
        memory: dict[str, Any] = {}
        folder = self.controller_dir("memory")
        if folder is not None:
            raw = read_keyed(os.path.join(folder, "memory.stat"))
            memory = {"cache": raw.get("cache", 0)}
            for key, prefix in (("usage", "memory."), ("swap", "memory.memsw."), ("kernel", "memory.kmem."),
                                ("kernelTCP", "memory.kmem.tcp.")):
                base = os.path.join(folder, prefix)
                memory[key] = {"limit": read_int(base + "limit_in_bytes"), "usage": read_int(base + "usage_in_bytes"),
                               "max": read_int(base + "max_usage_in_bytes"), "failcnt": read_int(base + "failcnt")}
            memory["raw"] = raw
        pids: dict[str, int] = {}
        folder = self.controller_dir("pids")
        if folder is not None:
            pids = {"current": read_int(os.path.join(folder, "pids.current")),
                    "limit": read_int(os.path.join(folder, "pids.max"))}
        cpu: dict[str, Any] = {}
        folder = self.controller_dir("cpuacct")
        if folder is not None:
            tick = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
            times = read_keyed(os.path.join(folder, "cpuacct.stat"))

            def per_cpu(name: str) -> list[int]:
                return [int(v) for v in (read_text(os.path.join(folder, name)) or "").split()]

            cpu = {"usage": {"total": read_int(os.path.join(folder, "cpuacct.usage")),
                             "percpu": per_cpu("cpuacct.usage_percpu"),
                             "percpu_kernel": per_cpu("cpuacct.usage_percpu_sys"),
                             "percpu_user": per_cpu("cpuacct.usage_percpu_user"),
                             "kernel": times.get("system", 0) * tick, "user": times.get("user", 0) * tick}}
        return {"cpu": cpu, "memory": memory, "pids": pids}
