"""linux.resources beyond limits of memory, cpu and pids, as runc applies them at create (what Docker and podman
write: swappiness, oom_kill_disable, block I/O weights, hugetlb, network classes), in fake cgroup trees."""

import pytest

import oci.linux.cgroups.v1
import oci.linux.cgroups.v2
from oci.linux.cgroups.base import CgroupError
from oci.linux.cgroups.v1 import V1Manager
from oci.linux.cgroups.v2 import V2Manager


@pytest.fixture
def v1(tmp_path, monkeypatch):
    """memory, blkio, hugetlb, net_cls and cpu hierarchies; the files a kernel would have."""
    monkeypatch.setattr(oci.linux.cgroups.v1, "write", lambda path, value: open(path, "w").write(value))
    hierarchies, folders = [], {}
    for controller, files in {"memory": ("memory.limit_in_bytes", "memory.swappiness", "memory.oom_control"),
                              "blkio": ("blkio.bfq.weight", "blkio.bfq.weight_device"),
                              "hugetlb": ("hugetlb.2MB.limit_in_bytes",), "net_cls": ("net_cls.classid",),
                              "cpu": ("cpu.shares", "cpu.rt_period_us", "cpu.rt_runtime_us")}.items():
        folder = tmp_path / controller / "ocikit" / "c1"
        folder.mkdir(parents=True)
        for name in files:
            (folder / name).write_text("")
        hierarchies.append(("cgroup", str(tmp_path / controller), {controller}))
        folders[controller] = folder
    return V1Manager("/ocikit/c1", hierarchies), folders


def test_v1_swappiness_and_oom_killer(v1):
    cgroup, folders = v1
    cgroup.apply({"memory": {"limit": 1 << 26, "swappiness": 10, "disableOOMKiller": True, "kernel": 1 << 20}})
    memory = folders["memory"]
    assert [(memory / n).read_text() for n in ("memory.limit_in_bytes", "memory.swappiness",
                                               "memory.oom_control")] == [str(1 << 26), "10", "1"]


def test_v1_no_op_values_write_nothing(v1):
    """Docker writes disableOOMKiller false and blockIO.weight 0 into every config."""
    cgroup, folders = v1
    cgroup.apply({"memory": {"disableOOMKiller": False, "swappiness": None}, "blockIO": {"weight": 0}})
    assert all((folder / name).read_text() == "" for folder in folders.values() for name in
               (p.name for p in folder.iterdir()))


def test_v1_swappiness_range(v1):
    with pytest.raises(CgroupError, match="swappiness: 101 is outside 0-100"):
        v1[0].apply({"memory": {"swappiness": 101}})


def test_v1_weights_hugetlb_net_cls_realtime(v1):
    cgroup, folders = v1
    cgroup.apply({"blockIO": {"weight": 300, "weightDevice": [{"major": 8, "minor": 0, "weight": 50}]},
                  "hugepageLimits": [{"pageSize": "2MB", "limit": 1 << 22}], "network": {"classID": 0x100001},
                  "cpu": {"realtimePeriod": 1000000, "realtimeRuntime": 950000}})
    assert (folders["blkio"] / "blkio.bfq.weight").read_text() == "300"  # no blkio.weight: BFQ's file
    assert (folders["blkio"] / "blkio.bfq.weight_device").read_text() == "8:0 50"
    assert (folders["hugetlb"] / "hugetlb.2MB.limit_in_bytes").read_text() == str(1 << 22)
    assert (folders["net_cls"] / "net_cls.classid").read_text() == str(0x100001)
    assert (folders["cpu"] / "cpu.rt_runtime_us").read_text() == "950000"


def test_v1_what_cannot_apply_is_one_line(v1):
    """A limit the kernel has no file for is refused (as runc refuses it), not dropped."""
    with pytest.raises(CgroupError, match=r"hugepageLimits/0: this kernel has no hugetlb.1GB.limit_in_bytes"):
        v1[0].apply({"hugepageLimits": [{"pageSize": "1GB", "limit": 1 << 30}]})
    with pytest.raises(CgroupError, match="the net_prio controller is not mounted"):
        v1[0].apply({"network": {"priorities": [{"name": "eth0", "priority": 5}]}})


@pytest.fixture
def v2(tmp_path, monkeypatch):
    monkeypatch.setattr(oci.linux.cgroups.v2, "write", lambda path, value: open(path, "w").write(value))
    folder = tmp_path / "ocikit" / "c1"
    folder.mkdir(parents=True)
    for parent in (tmp_path, tmp_path / "ocikit"):
        (parent / "cgroup.subtree_control").write_text("cpu io memory pids hugetlb\n")
    for name in ("io.weight", "hugetlb.2MB.max", "cpu.idle", "cpu.max.burst", "memory.max"):
        (folder / name).write_text("")
    return V2Manager("/ocikit/c1", [("cgroup2", str(tmp_path), set())]), folder


def test_v2_weights_hugetlb_idle_burst(v2):
    cgroup, folder = v2
    cgroup.apply({"blockIO": {"weight": 1000}, "hugepageLimits": [{"pageSize": "2MB", "limit": 1 << 21}],
                  "cpu": {"idle": 1, "burst": 1000}})
    assert [(folder / n).read_text() for n in ("io.weight", "hugetlb.2MB.max", "cpu.idle", "cpu.max.burst")] == \
        ["10000", str(1 << 21), "1", "1000"]  # runc's conversion: 1 + (weight - 10) * 9999 / 990


def test_v2_notes_what_it_has_no_file_for(v2):
    cgroup, folder = v2
    notes: list[str] = []
    cgroup.apply({"memory": {"limit": 1 << 26, "swappiness": 10, "disableOOMKiller": True},
                  "network": {"classID": 1}, "blockIO": {"leafWeight": 10}}, notes)
    assert (folder / "memory.max").read_text() == str(1 << 26)
    assert [n.split(":")[0] for n in notes] == ["/linux/resources/memory/swappiness",
                                               "/linux/resources/memory/disableOOMKiller",
                                               "/linux/resources/network", "/linux/resources/blockIO/leafWeight"]
    with pytest.raises(CgroupError, match="realtime"):
        cgroup.apply({"cpu": {"realtimeRuntime": 5}})
