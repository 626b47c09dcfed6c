"""runc's `pause`, `resume` and `update`: the cgroup freezer and live changes of memory and pids limits.

`pause` records where the container's freezer file is (state.FREEZER_LINK in the container's
directory), so that `state` and `list` can report `paused` by reading that one file. A paused
container still dies of SIGKILL: `kill_paused` kills and then thaws, as runc does (on cgroup v1
a frozen task does not act on a signal until it is thawed).
"""

from __future__ import annotations

import os

from oci.errors import Conflict, InvalidInput
from oci.runtime.state import FREEZER_LINK, Container, StateStore, write_atomic

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# What `update` changes, as `runc update -r` does: memory limit, reservation and swap, cpu shares,
# quota, period, realtime runtime and period, cpus and mems, the block I/O weight (and throttles),
# the pids limit, unified. The rest of a LinuxResources (what containerd's UpdateContainerResources
# sends in full: devices, hugepage limits, swappiness, ...) is known but left as it is, as runc
# leaves it, and logged unless a no-op; unknown properties are ignored and logged.
UPDATABLE: dict[str, Any] = {"memory": {"limit": True, "reservation": True, "swap": True},
                              "pids": {"limit": True},
                              "cpu": {"shares": True, "quota": True, "period": True, "cpus": True, "mems": True,
                                      "realtimeRuntime": True, "realtimePeriod": True},
                              "unified": True,
                              "blockIO": {"weight": True, "throttleReadBpsDevice": True,
                                          "throttleWriteBpsDevice": True, "throttleReadIOPSDevice": True,
                                          "throttleWriteIOPSDevice": True}}
SIGKILL = 9  # the signal module's import (enum) costs more than a pause
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def _cgroup(container: Container) -> Any:
    from oci.linux import cgroups

    return cgroups.manager(container.cgroup_path)


def pause(store: StateStore, container_id: str) -> None:
    """Freeze every process of a created or running container."""
    with store.lock(container_id):
        container = store.load(container_id)
        status = container.status()
        if status not in ("created", "running"):
            raise Conflict(f"container not running ({status})")
        cgroup = _cgroup(container)
        _record_freezer(container, cgroup.freezer_file())
        try:
            cgroup.freeze()
        except BaseException:
            cgroup.thaw()
            raise


def _record_freezer(container: Container, freezer: str) -> None:
    """Name the freezer file in the container's directory (once: it stays the same)."""
    link = os.path.join(container.directory, FREEZER_LINK)
    try:
        with open(link) as f:
            if f.read() == freezer:
                return
    except FileNotFoundError:
        pass
    write_atomic(link, freezer.encode(), 0o600)


def resume(store: StateStore, container_id: str) -> None:
    """Thaw a paused container."""
    with store.lock(container_id):
        container = store.load(container_id)
        if container.status() != "paused":
            raise Conflict("container not paused")
        _cgroup(container).thaw()


def kill_paused(store: StateStore, container_id: str) -> None:
    """If the container is paused: SIGKILL every process in it, then thaw so that they die."""
    container = store.load(container_id)
    if not container.alive() or not container.paused():
        return
    cgroup = _cgroup(container)
    for pid in cgroup.pids():
        try:
            os.kill(pid, SIGKILL)
        except ProcessLookupError:
            pass
    cgroup.thaw()


def thaw_if_paused(store: StateStore, container_id: str) -> None:
    """Thaw a paused container (after a SIGKILL was sent, so that it can die)."""
    container = store.load(container_id)
    if container.alive() and container.paused():
        _cgroup(container).thaw()


def parse_bytes(text: str, flag: str) -> int:
    """A size as runc's flags take it: `-1` (unlimited), bytes, or a number with k, m, g, t or p (binary units,
    optionally followed by b or ib)."""
    import re

    if text.strip() == "-1":
        return -1
    match = re.fullmatch(r"(\d+(?:\.\d+)?) ?([kmgtp])?i?b?", text.strip().lower())
    if match is None:
        raise InvalidInput(f"{flag}: invalid size {text!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2) or ""])


CPU_FLAGS = (("shares", "--cpu-share"), ("quota", "--cpu-quota"), ("period", "--cpu-period"),
             ("cpus", "--cpuset-cpus"), ("mems", "--cpuset-mems"), ("realtimePeriod", "--cpu-rt-period"),
             ("realtimeRuntime", "--cpu-rt-runtime"))


def resources_from_flags(flags: dict[str, str | int | None]) -> dict[str, Any]:
    """LinuxResources from runc's update flags (--memory, --memory-reservation, --memory-swap
    as sizes, --pids-limit, --cpu-share, --cpu-quota, --cpu-period as numbers, --cpuset-cpus,
    --cpuset-mems as lists); absent flags leave their value alone."""
    memory = {key: parse_bytes(flags[flag], flag) for key, flag in (  # type: ignore[arg-type]
        ("limit", "--memory"), ("reservation", "--memory-reservation"), ("swap", "--memory-swap"))
        if flags.get(flag) is not None}
    resources: dict[str, Any] = {"memory": memory}
    if flags.get("--pids-limit") is not None:
        resources["pids"] = {"limit": flags["--pids-limit"]}
    cpu = {key: flags[flag] for key, flag in CPU_FLAGS if flags.get(flag) is not None}
    from oci.linux.cgroups.base import is_cpu_list

    for key in ("cpus", "mems"):
        if key in cpu and not is_cpu_list(str(cpu[key])):
            raise InvalidInput(f"--cpuset-{key}: invalid list {cpu[key]!r} (for example 0-2,4)")
    if cpu:
        resources["cpu"] = cpu
    if flags.get("--blkio-weight") is not None:
        resources["blockIO"] = {"weight": flags["--blkio-weight"]}
    return resources



def update_rules() -> dict[str, Any]:
    """oci.runtime.config's rules for a LinuxResources, with what `update` leaves alone as Ignore."""
    from oci.runtime.config import ANY, RESOURCES_RULES, Ignore

    def rules(known: Any, updatable: Any, pointer: str) -> Any:
        if updatable is True:
            return ANY
        if not isinstance(known, dict):
            return known if isinstance(known, Ignore) else Ignore("update leaves it as it is (as runc does)")
        return {key: rules(value, (updatable or {}).get(key), f"{pointer}/{key}") for key, value in known.items()}

    return rules(RESOURCES_RULES, UPDATABLE, "")


def load_resources(data: bytes, source: str, notes: list[str] | None = None) -> dict[str, Any]:
    """A LinuxResources JSON document (`update -r`), validated against the vendored schema; what `update`
    leaves alone and unknown properties are appended to `notes`, not refused."""
    from oci import RUNTIME_SPEC_VERSION, schema
    from oci.errors import InvalidDocument
    from oci.runtime.config import and_more, fold_keys, review

    resources = schema.parse(data, source)
    if not isinstance(resources, dict):
        raise InvalidDocument(source, [("", "not a LinuxResources object")])
    rules = update_rules()
    folded: list[str] = []
    fold_keys(resources, rules, "", folded)
    prefix = "/linux/resources"
    problems = schema.violations({"ociVersion": RUNTIME_SPEC_VERSION, "linux": {"resources": resources}},
                                 "runtime-config")
    if problems:
        problems = [(p.removeprefix(prefix) if p.startswith(prefix) else p, m) for p, m in problems]
        raise InvalidDocument(source, [(problems[0][0], problems[0][1] + and_more(problems))])
    found = review(resources, rules)
    if notes is not None:
        notes += [f"{source}: {note}" for note in folded + found.notes]
    return resources


def update(store: StateStore, container_id: str, resources: dict[str, Any]) -> None:
    """Apply new limits to a live container's cgroup; 0 (or absent) leaves a value as it is, as with runc."""
    changes: dict[str, Any] = {}
    for group, fields in UPDATABLE.items():
        wanted = {k: v for k, v in (resources.get(group) or {}).items() if (fields is True or k in fields) and v != 0}
        if wanted:
            changes[group] = wanted
    with store.lock(container_id):
        container = store.load(container_id)
        if not container.alive():
            raise Conflict("container not running")
        if changes:
            _cgroup(container).update(changes)
