"""linux.resources.cpu shares, quota and period (what `ctr run` asks by default): the files written, in fake trees.

A cgroup file takes each write(2) whole; a regular file keeps what a shorter write leaves behind,
so the fakes' writes replace the file's content."""

import pytest

import oci.linux.cgroups.v1
import oci.linux.cgroups.v2
from oci.linux.cgroups.v1 import V1Manager
from oci.linux.cgroups.v2 import V2Manager
from oci.runtime.config import review


def replace_on_write(monkeypatch, module) -> None:
    monkeypatch.setattr(module, "write", lambda path, value: open(path, "w").write(value))


@pytest.fixture
def v1_cpu(tmp_path, monkeypatch):
    replace_on_write(monkeypatch, oci.linux.cgroups.v1)
    folder = tmp_path / "cpu,cpuacct" / "ocikit" / "c1"
    folder.mkdir(parents=True)
    for name, text in {"cpu.shares": "1024", "cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "-1"}.items():
        (folder / name).write_text(text)
    return V1Manager("/ocikit/c1", [("cgroup", str(tmp_path / "cpu,cpuacct"), {"cpu", "cpuacct"})]), folder


@pytest.fixture
def v2_cpu(tmp_path, monkeypatch):
    replace_on_write(monkeypatch, oci.linux.cgroups.v2)
    folder = tmp_path / "ocikit" / "c1"
    folder.mkdir(parents=True)
    for parent in (tmp_path, tmp_path / "ocikit"):
        (parent / "cgroup.subtree_control").write_text("cpu memory pids\n")
    (folder / "cpu.weight").write_text("100")
    (folder / "cpu.max").write_text("max 100000")
    return V2Manager("/ocikit/c1", [("cgroup2", str(tmp_path), set())]), folder


def test_v1_shares_quota_period(v1_cpu):
    cgroup, folder = v1_cpu
    cgroup.apply({"cpu": {"shares": 512, "quota": 50000, "period": 200000}})
    assert [(folder / n).read_text() for n in ("cpu.shares", "cpu.cfs_quota_us", "cpu.cfs_period_us")] == \
        ["512", "50000", "200000"]


def test_v1_zero_means_unset_as_runc(v1_cpu):
    cgroup, folder = v1_cpu
    cgroup.apply({"cpu": {"shares": 0, "quota": 0, "period": 0}})
    assert (folder / "cpu.shares").read_text() == "1024"


@pytest.mark.parametrize("cpu, weight, cpu_max", [
    ({"shares": 1024}, "39", "max 100000"),  # runc's conversion: 1 + (shares - 2) * 9999 / 262142
    ({"shares": 2}, "1", "max 100000"),
    ({"shares": 262144}, "10000", "max 100000"),
    ({"quota": 50000}, "100", "50000 100000"),
    ({"quota": 25000, "period": 50000}, "100", "25000 50000"),
    ({"quota": -1, "period": 50000}, "100", "max 50000"),
])
def test_v2_weight_and_max(v2_cpu, cpu, weight, cpu_max):
    cgroup, folder = v2_cpu
    cgroup.apply({"cpu": cpu})
    assert ((folder / "cpu.weight").read_text(), (folder / "cpu.max").read_text()) == (weight, cpu_max)


def test_config_takes_every_cpu_setting():
    doc = {"linux": {"resources": {"cpu": {"shares": 1024, "quota": 1, "period": 2, "cpus": "0-1", "mems": "0",
                                           "realtimeRuntime": 5, "realtimePeriod": 6, "burst": 7, "idle": 1}}}}
    found = review(doc)
    assert (found.refused, found.notes) == ([], [])


def test_v1_cpuset(tmp_path, monkeypatch):
    replace_on_write(monkeypatch, oci.linux.cgroups.v1)
    folder = tmp_path / "cpuset" / "ocikit" / "c1"
    folder.mkdir(parents=True)
    cgroup = V1Manager("/ocikit/c1", [("cgroup", str(tmp_path / "cpuset"), {"cpuset"})])
    cgroup.apply({"cpu": {"cpus": "0-1", "mems": "0"}})
    assert ((folder / "cpuset.cpus").read_text(), (folder / "cpuset.mems").read_text()) == ("0-1", "0")
    cgroup.update({"cpu": {"cpus": "1", "mems": ""}})  # "": unchanged
    assert ((folder / "cpuset.cpus").read_text(), (folder / "cpuset.mems").read_text()) == ("1", "0")


@pytest.mark.parametrize("cpu, cpu_max", [
    ({"quota": 20000}, "20000 50000"),  # the period stays
    ({"period": 200000}, "30000 200000"),  # the quota stays
    ({"quota": -1}, "max 50000"),
    ({"quota": 10000, "period": 100000}, "10000 100000"),
])
def test_v2_update_keeps_what_is_not_given(v2_cpu, cpu, cpu_max):
    cgroup, folder = v2_cpu
    (folder / "cpu.max").write_text("30000 50000")
    cgroup.update({"cpu": cpu})
    assert (folder / "cpu.max").read_text() == cpu_max


def test_v2_cpuset_enables_the_controller(v2_cpu, tmp_path):
    cgroup, folder = v2_cpu
    cgroup.apply({"cpu": {"cpus": "0", "mems": "0"}})
    assert ((folder / "cpuset.cpus").read_text(), (folder / "cpuset.mems").read_text()) == ("0", "0")
    assert (tmp_path / "ocikit" / "cgroup.subtree_control").read_text() == "+cpuset"


def test_update_flags_become_resources():
    from oci.errors import InvalidInput
    from oci.runtime.control import resources_from_flags

    assert resources_from_flags({"--cpu-share": 512, "--cpuset-cpus": "0-2,4", "--cpu-quota": -1})["cpu"] == \
        {"shares": 512, "quota": -1, "cpus": "0-2,4"}
    for bad in ("0-", "a", "2-1", "1,,2", ""):
        with pytest.raises(InvalidInput):
            resources_from_flags({"--cpuset-cpus": bad})


def test_v2_unified_writes_files_and_enables_their_controller(v2_cpu, tmp_path):
    cgroup, folder = v2_cpu
    (folder / "memory.high").write_text("max")
    cgroup.apply({"pids": {"limit": 5}, "unified": {"memory.high": "50000000", "pids.max": "7"}})
    assert (folder / "memory.high").read_text() == "50000000"
    assert (folder / "pids.max").read_text() == "7"  # unified has the last word


@pytest.mark.parametrize("key", ["cgroup.procs", "cgroup.subtree_control", "../escape.max", "memory", "memory.",
                                 "a/b.c", "no.such"])
def test_v2_unified_refuses_what_is_not_a_controller_file(v2_cpu, key):
    from oci.linux.cgroups.base import CgroupError

    cgroup, _ = v2_cpu
    with pytest.raises(CgroupError, match="unified"):
        cgroup.apply({"unified": {key: "1"}})


def test_v1_refuses_unified(v1_cpu):
    from oci.linux.cgroups.base import CgroupError

    cgroup, _ = v1_cpu
    with pytest.raises(CgroupError, match="needs cgroup v2"):
        cgroup.apply({"unified": {"memory.high": "1"}})


THROTTLES = {"throttleReadBpsDevice": [{"major": 254, "minor": 0, "rate": 1048576}],
             "throttleWriteIOPSDevice": [{"major": 254, "minor": 0, "rate": 100}]}


def test_v1_block_io_throttles(tmp_path, monkeypatch):
    replace_on_write(monkeypatch, oci.linux.cgroups.v1)
    folder = tmp_path / "blkio" / "ocikit" / "c1"
    folder.mkdir(parents=True)
    cgroup = V1Manager("/ocikit/c1", [("cgroup", str(tmp_path / "blkio"), {"blkio"})])
    cgroup.apply({"blockIO": THROTTLES})
    assert (folder / "blkio.throttle.read_bps_device").read_text() == "254:0 1048576"
    assert (folder / "blkio.throttle.write_iops_device").read_text() == "254:0 100"


def test_v2_block_io_throttles_are_one_io_max_line_per_device(v2_cpu, tmp_path):
    cgroup, folder = v2_cpu
    cgroup.apply({"blockIO": THROTTLES})
    assert (folder / "io.max").read_text() == "254:0 rbps=1048576 wiops=100"
    assert (tmp_path / "ocikit" / "cgroup.subtree_control").read_text() == "+io"


def test_config_takes_throttles_and_weights():
    doc = {"linux": {"resources": {"blockIO": {**THROTTLES, "weight": 500, "leafWeight": 10,
                                               "weightDevice": [{"major": 8, "minor": 0, "weight": 20}]}}}}
    found = review(doc)
    assert (found.refused, found.notes) == ([], [])
