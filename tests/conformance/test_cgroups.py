"""config-linux.md#control-groups: cgroupsPath, memory and pids limits (cgroup v1 on this machine)."""

from __future__ import annotations

from pathlib import Path

import pytest

CGROUP_ROOT = Path("/sys/fs/cgroup")
MEMORY_LIMIT = 64 * 1024 * 1024
PIDS_LIMIT = 42


def controller_dir(controller: str, cgroups_path: str) -> Path:
    return CGROUP_ROOT / controller / cgroups_path.lstrip("/")


@pytest.fixture
def limited(runtime, bundle):
    """A bundle with its own cgroupsPath and memory and pids limits; returns (bundle, cgroupsPath)."""
    if not (CGROUP_ROOT / "memory").is_dir():
        pytest.skip("these tests read cgroup v1 files (run them under cg2vm for v2)")
    path = f"/ocikit-conformance-{runtime.new_id()}"
    bundle.linux["cgroupsPath"] = path
    bundle.linux["resources"]["memory"] = {"limit": MEMORY_LIMIT}
    bundle.linux["resources"]["pids"] = {"limit": PIDS_LIMIT}
    return bundle, path


@pytest.mark.spec("config-linux.md#cgroups-path")
def test_process_is_placed_in_cgroups_path(runtime, limited):
    bundle, path = limited
    bundle.checker("sleep", "60").write()
    cid, result = runtime.create(bundle.path)
    result.check()
    pid = runtime.state(cid).json()["pid"]
    for controller in ("memory", "pids"):
        procs = controller_dir(controller, path).joinpath("cgroup.procs").read_text().split()
        assert str(pid) in procs, controller
    lines = dict(line.split(":", 2)[1:] for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines())
    assert lines["memory"] == path and lines["pids"] == path


@pytest.mark.spec("config-linux.md#memory")
def test_memory_and_pids_limits_are_applied(runtime, limited):
    bundle, path = limited
    bundle.checker("sleep", "60").write()
    cid, result = runtime.create(bundle.path)
    result.check()
    assert int(controller_dir("memory", path).joinpath("memory.limit_in_bytes").read_text()) == MEMORY_LIMIT
    assert int(controller_dir("pids", path).joinpath("pids.max").read_text()) == PIDS_LIMIT


@pytest.mark.spec("config-linux.md#pids")
def test_limits_visible_from_inside(runtime, limited):
    """The container sees its own cgroup and its limits through a cgroup mount at /sys/fs/cgroup."""
    bundle, path = limited
    bundle.add_mount("/sys/fs/cgroup", "cgroup", "cgroup", ["nosuid", "noexec", "nodev", "relatime", "ro"])
    bundle.checker("report", "-r", "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                   "-r", "/sys/fs/cgroup/pids/pids.max").write()
    report = runtime.run_json(bundle.path)
    cgroups = dict(line.split(":", 2)[1:] for line in report["cgroup"])
    assert cgroups["memory"] == path and cgroups["pids"] == path
    assert int(report["read"]["/sys/fs/cgroup/memory/memory.limit_in_bytes"]["text"]) == MEMORY_LIMIT
    assert int(report["read"]["/sys/fs/cgroup/pids/pids.max"]["text"]) == PIDS_LIMIT


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
    cid, result = runtime.create(bundle.path)
    result.check()
    assert controller_dir("memory", path).is_dir()
    runtime.start(cid).check()
    runtime.wait_stopped(cid)
    runtime.delete(cid).check()
    assert not controller_dir("memory", path).exists()
    assert not controller_dir("pids", path).exists()
