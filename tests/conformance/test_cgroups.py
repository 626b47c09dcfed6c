"""config-linux.md#control-groups: cgroupsPath, memory and pids limits.

Runs on cgroup v1 (this machine: /sys/fs/cgroup/<controller>/<path>) and on the unified
hierarchy (`../shared/tools/cg2vm -- .venv/bin/python -m pytest tests/conformance/test_cgroups.py`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

CGROUP_ROOT = Path("/sys/fs/cgroup")
UNIFIED = (CGROUP_ROOT / "cgroup.controllers").exists()
MEMORY_LIMIT = 64 * 1024 * 1024
PIDS_LIMIT = 42
# controller -> (v1 limit file, v2 limit file)
LIMIT_FILES = {"memory": ("memory.limit_in_bytes", "memory.max"), "pids": ("pids.max", "pids.max")}


def cgroup_dir(controller: str, cgroups_path: str, root: Path = CGROUP_ROOT) -> Path:
    base = root if UNIFIED else root / controller
    return base / cgroups_path.lstrip("/")


def limit_file(controller: str, cgroups_path: str, root: Path = CGROUP_ROOT) -> Path:
    return cgroup_dir(controller, cgroups_path, root) / LIMIT_FILES[controller][UNIFIED]


def cgroup_of(lines: list[str], controller: str) -> str:
    """The path of CONTROLLER in /proc/PID/cgroup lines (the `0::` line on cgroup v2)."""
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if (UNIFIED and controllers == "") or controller in controllers.split(","):
            return path
    raise AssertionError(f"no {controller} line in {lines}")


@pytest.fixture
def limited(runtime, bundle):
    """A bundle with its own cgroupsPath and memory and pids limits; returns (bundle, cgroupsPath)."""
    path = f"/ocikit-conformance-{runtime.new_id()}"
    bundle.linux["cgroupsPath"] = path
    bundle.linux["resources"]["memory"] = {"limit": MEMORY_LIMIT}
    bundle.linux["resources"]["pids"] = {"limit": PIDS_LIMIT}
    return bundle, path


@pytest.mark.spec("config-linux.md#cgroups-path")
def test_process_is_placed_in_cgroups_path(runtime, limited):
    bundle, path = limited
    bundle.checker("sleep", "60").write()
    cid = runtime.created(bundle.path)
    pid = runtime.state(cid).json()["pid"]
    for controller in ("memory", "pids"):
        procs = cgroup_dir(controller, path).joinpath("cgroup.procs").read_text().split()
        assert str(pid) in procs, controller
        assert cgroup_of(Path(f"/proc/{pid}/cgroup").read_text().splitlines(), controller) == path


@pytest.mark.spec("config-linux.md#memory")
def test_memory_and_pids_limits_are_applied(runtime, limited):
    bundle, path = limited
    bundle.checker("sleep", "60").write()
    runtime.created(bundle.path)
    assert int(limit_file("memory", path).read_text()) == MEMORY_LIMIT
    assert int(limit_file("pids", path).read_text()) == PIDS_LIMIT


@pytest.mark.spec("config-linux.md#pids")
def test_limits_visible_from_inside(runtime, limited):
    """The container sees its own cgroup and its limits through a cgroup mount at /sys/fs/cgroup."""
    bundle, path = limited
    bundle.add_mount("/sys/fs/cgroup", "cgroup2" if UNIFIED else "cgroup", "cgroup",
                     ["nosuid", "noexec", "nodev", "relatime", "ro"])
    inside = {c: str(limit_file(c, "/")) for c in LIMIT_FILES}
    if UNIFIED:  # a cgroup2 mount without a cgroup namespace shows the whole hierarchy
        bundle.set_namespace("cgroup")
    bundle.checker("report", *[arg for f in inside.values() for arg in ("-r", f)]).write()
    report = runtime.run_json(bundle.path)
    if not UNIFIED:
        assert cgroup_of(report["cgroup"], "memory") == path and cgroup_of(report["cgroup"], "pids") == path
    assert int(report["read"][inside["memory"]]["text"]) == MEMORY_LIMIT
    assert int(report["read"][inside["pids"]]["text"]) == PIDS_LIMIT


@pytest.mark.spec("config-linux.md#pids")
def test_pids_limit_is_enforced(runtime, limited):
    """A fork beyond pids.limit fails inside the container."""
    bundle, _ = limited
    bundle.linux["resources"]["pids"] = {"limit": 3}
    bundle.args("/bin/sh", "-c", "sleep 5 & sleep 5 & sleep 5 & wait; echo done").write()
    result = runtime.run(bundle.path)
    assert "can't fork" in result.stderr + result.stdout or "Resource temporarily unavailable" in result.stderr


@pytest.mark.spec("runtime.md#delete")
def test_delete_removes_the_cgroup(runtime, limited):
    bundle, path = limited
    bundle.checker("exit", "0").write()
    cid = runtime.created(bundle.path)
    assert cgroup_dir("memory", path).is_dir()
    runtime.start(cid).check()
    runtime.wait_stopped(cid)
    runtime.delete(cid).check()
    assert not cgroup_dir("memory", path).exists()
    assert not cgroup_dir("pids", path).exists()
