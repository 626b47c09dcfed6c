"""oci-run's runc verbs beyond the lifecycle, against the real kernel: pause, resume, update, ps, events.

Containers from a busybox-static rootfs, each in a cgroup of its own (cgroup v1 here; the v2
test runs in cg2vm's VM), and `podman --runtime oci-run pause/unpause` on a running container.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from oci.runtime import config
from tests.conftest import CG2VM
from tests.integration import podman_env
from tests.integration.ocirun_bundle import Bundle, OciRun, make_rootfs, unique_id

pytestmark = pytest.mark.root

ROOT = Path(__file__).resolve().parents[2]
V1 = os.path.isdir("/sys/fs/cgroup/freezer") and os.path.isdir("/sys/fs/cgroup/memory")
COUNTER = "i=0; while :; do i=$((i+1)); echo $i >> /tmp/count; sleep 0.01; done"


@pytest.fixture(scope="module")
def rootfs_template(tmp_path_factory):
    return make_rootfs(tmp_path_factory.mktemp("ocirun-control-rootfs") / "rootfs")


@pytest.fixture
def oci(tmp_path):
    runtime = OciRun(tmp_path / "state")
    yield runtime
    runtime.cleanup()
    for controller in ("freezer", "memory", "pids", "cpu", "cpuacct", "blkio", "devices", "cpuset", "systemd",
                       "unified"):
        try:
            os.rmdir(f"/sys/fs/cgroup/{controller}/ocikit-ctl")
        except OSError:
            pass  # another test's container is still there, or it was never made


def started(oci: OciRun, bundle: Bundle, *args: str, memory: int | None = None, pids: int | None = None,
            cpu: dict | None = None, block_io: dict | None = None) -> tuple[str, str]:
    """A detached container running ARGS in the cgroup /ocikit-ctl/ID: (id, cgroup path)."""
    cid = unique_id("ocirun-ctl")
    path = f"/ocikit-ctl/{cid}"
    bundle.config["linux"]["cgroupsPath"] = path
    if memory is not None:
        bundle.config["linux"]["resources"]["memory"] = {"limit": memory}
    if pids is not None:
        bundle.config["linux"]["resources"]["pids"] = {"limit": pids}
    if cpu is not None:
        bundle.config["linux"]["resources"]["cpu"] = cpu
    if block_io is not None:
        bundle.config["linux"]["resources"]["blockIO"] = block_io
    bundle.args(*args).write()
    result = oci("run", "-d", "--bundle", str(bundle.path), cid)
    assert result.returncode == 0, result.stderr
    return cid, path


def wait_status(oci: OciRun, cid: str, status: str, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while oci.state(cid)["status"] != status:
        assert time.monotonic() < deadline, f"{cid} never became {status}"
        time.sleep(0.02)


def count(bundle: Bundle) -> int:
    try:
        return len((bundle.path / "rootfs" / "tmp" / "count").read_text().splitlines())
    except FileNotFoundError:
        return 0


def cgroup_file(controller: str, path: str, name: str) -> str:
    return Path(f"/sys/fs/cgroup/{controller}{path}/{name}").read_text().strip()


@pytest.fixture
def bundle(tmp_path, rootfs_template):
    if not V1:
        pytest.skip("cgroup v1 freezer and memory hierarchies are not mounted (v2 is tested in cg2vm)")
    return Bundle(tmp_path / "bundle", rootfs_template)


def test_pause_freezes_and_resume_thaws(oci, bundle):
    cid, path = started(oci, bundle, "sh", "-c", COUNTER)
    deadline = time.monotonic() + 5
    while count(bundle) < 3:
        assert time.monotonic() < deadline, "the counter never started"
        time.sleep(0.02)
    assert oci("pause", cid).returncode == 0
    assert oci.state(cid)["status"] == "paused"
    assert cgroup_file("freezer", path, "freezer.state") == "FROZEN"
    assert [c["status"] for c in json.loads(oci("list", "--format", "json").stdout)] == ["paused"]
    frozen_at = count(bundle)
    time.sleep(0.3)
    assert count(bundle) == frozen_at, "the counter went on while paused"
    again = oci("pause", cid)
    assert again.returncode == 7 and "container not running" in again.stderr
    refused = oci("delete", cid)
    assert refused.returncode == 7 and "paused" in refused.stderr
    refused = oci("exec", cid, "true")
    assert refused.returncode == 7 and "cannot exec in a paused container" in refused.stderr
    assert oci("resume", cid).returncode == 0
    assert oci.state(cid)["status"] == "running"
    assert cgroup_file("freezer", path, "freezer.state") == "THAWED"
    deadline = time.monotonic() + 5
    while count(bundle) <= frozen_at + 3:
        assert time.monotonic() < deadline, "the counter did not go on after resume"
        time.sleep(0.02)
    again = oci("resume", cid)
    assert again.returncode == 7 and "container not paused" in again.stderr


def test_kill_and_force_delete_of_a_paused_container(oci, bundle, tmp_path, rootfs_template):
    cid, _ = started(oci, bundle, "sh", "-c", "sleep 100 & exec sleep 101")
    assert oci("pause", cid).returncode == 0
    assert oci("kill", cid, "KILL").returncode == 0
    wait_status(oci, cid, "stopped")
    assert oci("delete", cid).returncode == 0

    other = Bundle(tmp_path / "other", rootfs_template)
    cid, path = started(oci, other, "sh", "-c", "sleep 100 & exec sleep 101")
    assert oci("pause", cid).returncode == 0
    assert oci("delete", "--force", cid).returncode == 0
    assert oci("state", cid).returncode == 3
    assert not os.path.exists(f"/sys/fs/cgroup/freezer{path}")
    assert not os.path.exists(f"/sys/fs/cgroup/pids{path}")


def test_update_changes_limits_and_refuses_what_it_cannot_apply(oci, bundle, tmp_path):
    cid, path = started(oci, bundle, "sleep", "100", memory=64 << 20, pids=20)
    assert oci("update", "--memory", "32m", "--memory-swap", "64M", "--memory-reservation", "16m",
               "--pids-limit", "10", cid).returncode == 0
    assert cgroup_file("memory", path, "memory.limit_in_bytes") == str(32 << 20)
    assert cgroup_file("memory", path, "memory.soft_limit_in_bytes") == str(16 << 20)
    if os.path.exists(f"/sys/fs/cgroup/memory{path}/memory.memsw.limit_in_bytes"):
        assert cgroup_file("memory", path, "memory.memsw.limit_in_bytes") == str(64 << 20)
    assert cgroup_file("pids", path, "pids.max") == "10"
    # Raising memory above the old memory+swap limit works: the larger value is written first.
    resources = tmp_path / "resources.json"
    resources.write_text(json.dumps({"memory": {"limit": 96 << 20, "swap": 128 << 20}, "pids": {"limit": 15}}))
    assert oci("update", "-r", str(resources), cid).returncode == 0
    assert cgroup_file("memory", path, "memory.limit_in_bytes") == str(96 << 20)
    assert cgroup_file("pids", path, "pids.max") == "15"
    done = oci("update", "--resources", "-", cid, input=json.dumps({"pids": {"limit": -1}}).encode())
    assert done.returncode == 0, done.stderr
    assert cgroup_file("pids", path, "pids.max") == "max"

    weight = oci("update", "--resources", "-", cid, input=b'{"blockIO": {"weight": 500}, "unknownKnob": 1}')
    blkio = [name for name in ("blkio.weight", "blkio.bfq.weight")
             if os.path.exists(f"/sys/fs/cgroup/blkio{path}/{name}")]
    if blkio:  # applied as runc applies it, where the kernel has the file (BFQ's here)
        assert weight.returncode == 0, weight.stderr
        assert cgroup_file("blkio", path, blkio[0]) == "500"
        assert oci("update", "--blkio-weight", "300", cid).returncode == 0
        assert cgroup_file("blkio", path, blkio[0]) == "300"
    else:  # a weight that cannot apply is one line, as with runc
        assert weight.returncode == 1 and "/linux/resources/blockIO/weight" in weight.stderr
    invalid = oci("update", "-r", "-", cid, input=b'{"memory": {"limit": "lots"}}')
    assert invalid.returncode == 2 and "<stdin>: /memory/limit:" in invalid.stderr
    flag = oci("update", "--l3-cache-schema", "L3:0=f", cid)
    assert flag.returncode == 8 and "--l3-cache-schema" in flag.stderr
    cpus = oci("update", "--cpuset-cpus", "0-", cid)
    assert cpus.returncode == 2 and "--cpuset-cpus" in cpus.stderr
    size = oci("update", "--memory", "12q", cid)
    assert size.returncode == 2 and "--memory" in size.stderr
    assert cgroup_file("memory", path, "memory.limit_in_bytes") == str(96 << 20)

    assert oci("kill", cid, "KILL").returncode == 0
    wait_status(oci, cid, "stopped")
    stopped = oci("update", "--pids-limit", "5", cid)
    assert stopped.returncode == 7 and "container not running" in stopped.stderr


def test_update_of_cpu_shares_quota_period_and_cpuset(oci, bundle, tmp_path):
    cid, path = started(oci, bundle, "sleep", "100", cpu={"cpus": "0", "mems": "0"})
    assert cgroup_file("cpuset", path, "cpuset.cpus") == "0"
    assert oci("update", "--cpu-share", "512", "--cpu-quota", "50000", "--cpu-period", "200000",
               "--cpuset-cpus", "0-1", cid).returncode == 0
    assert [cgroup_file("cpu", path, name) for name in ("cpu.shares", "cpu.cfs_quota_us", "cpu.cfs_period_us")] \
        == ["512", "50000", "200000"]
    assert cgroup_file("cpuset", path, "cpuset.cpus") == "0-1"
    # podman update --cpus hands the quota and period over in a LinuxResources file.
    resources = tmp_path / "resources.json"
    resources.write_text(json.dumps({"cpu": {"quota": 150000, "period": 100000, "shares": 0}}))
    assert oci("update", "-r", str(resources), cid).returncode == 0
    assert [cgroup_file("cpu", path, name) for name in ("cpu.shares", "cpu.cfs_quota_us", "cpu.cfs_period_us")] \
        == ["512", "150000", "100000"]  # shares 0: left alone, as runc
    assert oci("update", "--cpu-quota", "-1", cid).returncode == 0
    assert cgroup_file("cpu", path, "cpu.cfs_quota_us") == "-1"


def block_device() -> tuple[int, int]:
    """(major, minor) of a block device of this host (a disk, or else a loop device)."""
    found = sorted(Path("/sys/block").iterdir(), key=lambda p: p.name.startswith(("loop", "zram", "ram")))
    major, minor = found[0].joinpath("dev").read_text().split(":")
    return int(major), int(minor)


@pytest.mark.skipif(not V1, reason="blkio.throttle files of a cgroup v1 host (v2: the unit tests' io.max)")
def test_block_io_throttles_at_create_and_update(oci, bundle, tmp_path):
    major, minor = block_device()
    throttle = {"throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1 << 20}]}
    cid, path = started(oci, bundle, "sleep", "100", block_io=throttle)
    assert cgroup_file("blkio", path, "blkio.throttle.read_bps_device") == f"{major}:{minor} {1 << 20}"
    resources = tmp_path / "resources.json"
    resources.write_text(json.dumps({"blockIO": {
        "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 2 << 20}],
        "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 50}]}}))
    assert oci("update", "-r", str(resources), cid).returncode == 0
    assert cgroup_file("blkio", path, "blkio.throttle.read_bps_device") == f"{major}:{minor} {2 << 20}"
    assert cgroup_file("blkio", path, "blkio.throttle.write_iops_device") == f"{major}:{minor} 50"


@pytest.mark.skipif(not V1, reason="the refusal of a cgroup v1 host")
def test_unified_resources_need_cgroup_v2(oci, bundle):
    cid = unique_id("ocirun-ctl")
    bundle.config["linux"]["cgroupsPath"] = f"/ocikit-ctl/{cid}"
    bundle.config["linux"]["resources"]["unified"] = {"memory.high": "1000000"}
    bundle.args("true").write()
    result = oci("run", "--bundle", str(bundle.path), cid)
    assert result.returncode != 0 and "/linux/resources/unified: needs cgroup v2" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and oci("state", cid).returncode == 3


def test_ps_lists_the_containers_processes(oci, bundle):
    cid, path = started(oci, bundle, "sh", "-c", "sleep 100 & exec sleep 101")
    init = oci.state(cid)["pid"]
    deadline = time.monotonic() + 5
    while len(cgroup_file("pids", path, "cgroup.procs").split()) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    in_cgroup = sorted(int(p) for p in cgroup_file("pids", path, "cgroup.procs").split())
    listed = oci("ps", "--format", "json", cid)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == in_cgroup and init in in_cgroup
    table = oci("ps", cid)
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split()[:2] == ["UID", "PID"]
    assert sorted(int(row.split()[1]) for row in rows) == in_cgroup
    assert sorted(row.split(None, 7)[7] for row in rows) == ["sleep 100", "sleep 101"]
    custom = oci("ps", cid, "-o", "pid,comm")
    assert custom.stdout.split() == ["PID", "COMMAND", *sum(([str(p), "sleep"] for p in in_cgroup), [])]
    both = oci("ps", "--format", "json", cid, "-o", "pid")
    assert both.returncode == 2


def test_events_give_memory_and_pids_numbers(oci, bundle):
    cid, _ = started(oci, bundle, "sh", "-c", "sleep 100 & exec sleep 101", memory=64 << 20, pids=20)
    deadline = time.monotonic() + 5
    while True:
        result = oci("events", "--stats", cid)
        assert result.returncode == 0, result.stderr
        event = json.loads(result.stdout)
        if event["data"]["pids"]["current"] == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(result.stdout.splitlines()) == 1
    assert (event["type"], event["id"]) == ("stats", cid)
    data = event["data"]
    assert data["pids"] == {"current": 2, "limit": 20}
    assert data["memory"]["usage"]["limit"] == 64 << 20
    assert 0 < data["memory"]["usage"]["usage"] <= 64 << 20
    assert data["cpu"]["usage"]["total"] > 0

    stream = subprocess.Popen(oci.argv("events", "--interval", "200ms", cid), stdout=subprocess.PIPE, text=True)
    first = json.loads(stream.stdout.readline())
    second = json.loads(stream.stdout.readline())
    assert first["type"] == second["type"] == "stats" and second["data"]["pids"]["limit"] == 20
    assert oci("kill", cid, "KILL").returncode == 0
    rest, _ = stream.communicate(timeout=10)
    assert stream.returncode == 0
    assert all(json.loads(line)["type"] == "stats" for line in rest.splitlines())
    stopped = oci("events", "--stats", cid)
    assert stopped.returncode == 7 and "is not running" in stopped.stderr


def test_events_report_an_oom_kill(oci, bundle):
    cid, _ = started(oci, bundle, "sleep", "100", memory=16 << 20)
    stream = subprocess.Popen(oci.argv("events", "--interval", "100ms", cid), stdout=subprocess.PIPE, text=True)
    assert json.loads(stream.stdout.readline())["type"] == "stats"
    # busybox tail keeps its whole input when it has no newline: the OOM killer takes it, not the init.
    hog = oci("exec", cid, "sh", "-c", "head -c 64m /dev/zero | busybox tail")
    assert hog.returncode == 137, hog.stderr
    deadline = time.monotonic() + 5
    kinds = []
    while "oom" not in kinds and time.monotonic() < deadline:
        kinds.append(json.loads(stream.stdout.readline())["type"])
    killed = oci("kill", cid, "KILL")
    # The OOM killer may take the init too when the host is short of memory (tests running beside this one):
    # then there is nothing left to kill, and the container has stopped all the same.
    assert killed.returncode == 0 or "container not running" in killed.stderr, killed.stderr
    stream.communicate(timeout=10)
    assert "oom" in kinds and oci.state(cid)["status"] == "stopped"


@pytest.mark.slow
@pytest.mark.skipif(not os.access(CG2VM, os.X_OK), reason=f"no cg2vm at {CG2VM}")
def test_pause_resume_update_events_on_cgroup_v2(tmp_path, monkeypatch):
    """One VM boot: linux.resources.unified applied at create, freeze and thaw through cgroup.freeze,
    limits changed in memory.max, pids.max, cpu.max, cpu.weight and cpuset.cpus."""
    bundle = Bundle(tmp_path / "bundle", make_rootfs(tmp_path / "template"))
    cid = unique_id("ocirun-ctl")
    path = f"/ocikit-ctl2/{cid}"
    bundle.config["linux"]["cgroupsPath"] = path
    bundle.config["linux"]["resources"].update({"memory": {"limit": 64 << 20}, "pids": {"limit": 20},
                                                "unified": {"memory.high": str(60 << 20)}})
    bundle.args("sleep", "100").write()
    monkeypatch.setenv("OCIKIT_CACHE_DIR", str(tmp_path / "cache"))
    config.load(str(bundle.path))  # remembered as oci-run remembers it: the guest skips jsonschema
    run = f"PYTHONPATH={ROOT} /usr/bin/python3 {ROOT}/bin/oci_run.py --root /run/ocirun"
    cg = f"/sys/fs/cgroup{path}"
    script = "; ".join([
        f"{run} run -d -b {bundle.path} {cid} </dev/null >/dev/null",
        f"echo memory.high=$(cat {cg}/memory.high)",
        f"{run} pause {cid} && echo paused-rc=0",
        f"{run} state {cid} | grep -o '\"status\": \"[a-z]*\"' | tr -d '\" '",
        f"grep frozen {cg}/cgroup.events | tr ' ' =",
        f"{run} resume {cid} && grep frozen {cg}/cgroup.events | tr ' ' =",
        f"{run} update --memory 32m --pids-limit 10 {cid} && echo memory.max=$(cat {cg}/memory.max) "
        f"pids.max=$(cat {cg}/pids.max)",
        f"{run} update --cpu-share 512 --cpu-quota 50000 --cpuset-cpus 0 {cid} && echo cpu.max=$(cat {cg}/cpu.max) "
        f"weight=$(cat {cg}/cpu.weight) cpus=$(cat {cg}/cpuset.cpus)",
        f"{run} events --stats {cid}",
        f"{run} pause {cid}; {run} delete --force {cid} && echo deleted-rc=0",
        f"test -d {cg} && echo LEFT-BEHIND",
    ])
    result = subprocess.run([CG2VM, "--share", str(tmp_path), "--timeout", "150", "--", "sh", "-c", script],
                            capture_output=True, text=True, timeout=200)
    assert result.returncode in (0, 1), result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[:9] == [f"memory.high={60 << 20}", "paused-rc=0", "status:paused", "frozen=1", "frozen=0",
                         f"memory.max={32 << 20} pids.max=10", "cpu.max=50000 100000 weight=20 cpus=0", lines[7],
                         "deleted-rc=0"], result.stdout + result.stderr[-1000:]
    stats = json.loads(lines[7])["data"]
    assert stats["memory"]["usage"]["limit"] == 32 << 20 and stats["pids"] == {"current": 1, "limit": 10}
    assert "LEFT-BEHIND" not in lines


@pytest.fixture(scope="session")
def podman(tmp_path_factory):
    with podman_env.session(tmp_path_factory) as env:
        yield env


@pytest.mark.slow
def test_podman_pause_unpause_and_update(podman):
    runtime = podman.runtime("oci-run")
    with podman.started("--memory", "64m", runtime=runtime, command=("sh", "-c", "while :; do sleep 0.05; done"),
                        ) as (name, pid):
        freezer = podman_env.host_cgroup_file(pid, "freezer", "freezer.state") if V1 else \
            podman_env.host_cgroup_file(pid, "", "cgroup.freeze")
        podman.run("pause", name, runtime=runtime, check=True)
        assert podman.run("inspect", "--format", "{{.State.Status}}", name).stdout.strip() == "paused"
        assert freezer.read_text().strip() in ("FROZEN", "1")
        podman.run("unpause", name, runtime=runtime, check=True)
        assert podman.run("inspect", "--format", "{{.State.Status}}", name).stdout.strip() == "running"
        assert freezer.read_text().strip() in ("THAWED", "0")
        # podman update hands oci-run `--resources=FILE` with the new memory and memory+swap limits.
        podman.run("update", "--memory", "32m", name, runtime=runtime, check=True)
        limit = podman_env.host_cgroup_file(pid, "memory", "memory.limit_in_bytes") if V1 else \
            podman_env.host_cgroup_file(pid, "", "memory.max")
        assert limit.read_text().strip() == str(32 << 20)
        # and with --cpus, a CFS quota over a 100 ms period.
        podman.run("update", "--cpus", "0.5", name, runtime=runtime, check=True)
        quota = podman_env.host_cgroup_file(pid, "cpu", "cpu.cfs_quota_us") if V1 else \
            podman_env.host_cgroup_file(pid, "", "cpu.max")
        assert quota.read_text().strip() in ("50000", "50000 100000")
