"""linux.resources beyond limits of memory, cpu and pids, as runc applies them at create (what Docker and podman
write: swappiness, oom_kill_disable, block I/O weights, hugetlb, network classes), in fake cgroup trees."""

import os

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
                              "cpu": ("cpu.shares", "cpu.rt_period_us", "cpu.rt_runtime_us"), "devices": ()}.items():
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
    assert all((folder / name).read_text() == "" for controller, folder in folders.items() for name in
               (p.name for p in folder.iterdir()) if controller != "devices")


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
def v2(tmp_path, monkeypatch, fake_kernel):
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


def test_v2_create_enables_every_controller_down_to_the_container(tmp_path, monkeypatch):
    """As runc's and crun's create: memory.events, cpu.stat, pids.current exist whatever the limits."""
    monkeypatch.setattr(oci.linux.cgroups.v2, "write", lambda path, value: open(path, "a").write(value + "\n"))
    (tmp_path / "cgroup.controllers").write_text("cpu io memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("memory\n")
    (tmp_path / "ocikit").mkdir()
    (tmp_path / "ocikit" / "cgroup.controllers").write_text("cpu io memory pids\n")
    (tmp_path / "ocikit" / "cgroup.subtree_control").write_text("cpu io memory pids\n")
    V2Manager("/ocikit/c1", [("cgroup2", str(tmp_path), set())]).create()
    assert (tmp_path / "ocikit" / "c1").is_dir()
    assert (tmp_path / "cgroup.subtree_control").read_text().splitlines() == ["memory", "+cpu +io +pids"]
    assert (tmp_path / "ocikit" / "cgroup.subtree_control").read_text() == "cpu io memory pids\n"  # nothing missing


def test_v2_devices_denied_when_the_config_lists_none(v2, fake_kernel):
    """runc's default: the default devices only, even without linux.resources.devices."""
    import struct

    from oci.linux.cgroups import devices_bpf
    from oci.linux.cgroups.base import DEFAULT_ALLOWED

    v2[0].apply({})
    calls = [args for name, args in fake_kernel.calls if name == "bpf"]
    assert [cmd for cmd, _ in calls] == [devices_bpf.BPF_PROG_LOAD, devices_bpf.BPF_PROG_QUERY,
                                         devices_bpf.BPF_PROG_ATTACH]
    program = devices_bpf.program(DEFAULT_ALLOWED)
    assert struct.unpack_from("<II", calls[0][1]) == (devices_bpf.BPF_PROG_TYPE_CGROUP_DEVICE, len(program) // 8)
    assert program.endswith(devices_bpf._insn(devices_bpf.MOV32_K, 0, imm=0) + devices_bpf._insn(devices_bpf.EXIT))



def _bpf_steps(fake_kernel):
    """The bpf calls made, each as (command, what it names): a program id, attach flags, a program's id."""
    import struct

    from oci.linux.cgroups import devices_bpf as d

    steps = []
    for cmd, attr in fake_kernel.called("bpf"):
        if cmd == d.BPF_PROG_GET_FD_BY_ID:
            steps.append(("get", struct.unpack_from("<I", attr)[0]))
        elif cmd == d.BPF_PROG_ATTACH:
            flags, replace = struct.unpack_from("<II", attr, 12)
            steps.append(("replace", replace) if flags & d.BPF_F_REPLACE else ("attach", flags))
        else:
            steps.append(({d.BPF_PROG_LOAD: "load", d.BPF_PROG_QUERY: "query", d.BPF_PROG_DETACH: "detach"}[cmd],
                          struct.unpack_from("<I", attr, 4)[0] if cmd == d.BPF_PROG_DETACH else None))
    return steps


@pytest.mark.parametrize("attached", [[], [7], [7, 8]])
def test_v2_device_program_replaces_those_attached(v2, fake_kernel, attached):
    """As runc: the new program goes on (in one step with BPF_F_REPLACE when there was one), then the
    old ones come off; exactly one is left, so a second set of rules that allows more takes effect."""
    from oci.linux.cgroups import devices_bpf as d

    fake_kernel.bpf_attached = list(attached)
    v2[0].apply({"devices": [{"allow": True, "access": "rwm"}]})
    steps = [(name, arg if name in ("get", "attach") else None) for name, arg in _bpf_steps(fake_kernel)]
    gets = [("get", prog_id) for prog_id in attached]
    expected = {0: [("attach", d.BPF_F_ALLOW_MULTI)], 1: [("replace", None)],
                2: [("attach", d.BPF_F_ALLOW_MULTI), ("detach", None), ("detach", None)]}[len(attached)]
    assert steps == [("load", None), ("query", None), *gets, *expected]
    assert len(fake_kernel.bpf_attached) == 1 and fake_kernel.bpf_attached[0] not in attached
    v2[0].apply({})  # and again: still one
    assert len(fake_kernel.bpf_attached) == 1


def test_v2_device_program_detaches_the_old_ones_by_their_fds(v2, fake_kernel):
    """BPF_PROG_DETACH names the fds BPF_PROG_GET_FD_BY_ID gave for the old programs; every fd is closed after."""
    import struct

    from oci.linux.cgroups import devices_bpf as d

    fake_kernel.bpf_attached = [7, 8]
    answers = []
    recording_bpf = fake_kernel.bpf

    def bpf(cmd, attr):
        answers.append(recording_bpf(cmd, attr))
        return answers[-1]

    fake_kernel.bpf = bpf
    open_before = len(os.listdir("/proc/self/fd"))
    v2[0].apply({})
    assert len(os.listdir("/proc/self/fd")) == open_before
    calls = fake_kernel.called("bpf")
    got = [fd for (cmd, _), fd in zip(calls, answers, strict=True) if cmd == d.BPF_PROG_GET_FD_BY_ID]
    assert [struct.unpack_from("<I", attr, 4)[0] for cmd, attr in calls if cmd == d.BPF_PROG_DETACH] == got


def test_v2_device_program_without_bpf_f_replace(v2, fake_kernel):
    """Before Linux 5.6 BPF_F_REPLACE is EINVAL: attach, then detach the one that was there."""
    import errno

    from oci.linux.cgroups import devices_bpf as d

    fake_kernel.bpf_attached = [7]
    fake_kernel.fail("bpf", errno.EINVAL,
                     when=lambda cmd, attr: cmd == d.BPF_PROG_ATTACH and attr[12] & d.BPF_F_REPLACE)
    v2[0].apply({})
    assert [name for name, _ in _bpf_steps(fake_kernel)] == ["load", "query", "get", "replace", "attach", "detach"]
    assert len(fake_kernel.bpf_attached) == 1 and fake_kernel.bpf_attached != [7]


def test_v2_device_program_beside_the_old_when_the_kernel_will_not_say(v2, fake_kernel):
    """A kernel that refuses BPF_PROG_QUERY: the new program goes on beside the old, as before."""
    import errno

    from oci.linux.cgroups import devices_bpf as d

    fake_kernel.bpf_attached = [7]
    fake_kernel.fail("bpf", errno.EINVAL, when=lambda cmd, attr: cmd == d.BPF_PROG_QUERY)
    v2[0].apply({})
    assert [name for name, _ in _bpf_steps(fake_kernel)] == ["load", "query", "attach"]
    assert len(fake_kernel.bpf_attached) == 2 and fake_kernel.bpf_attached[0] == 7


def test_v2_device_program_skips_what_it_may_not_open_and_fails_in_one_line(v2, fake_kernel):
    """A program an LSM keeps from us stays (it can only refuse more, as runc reasons); a detach the
    kernel refuses is one line, after the new program is on."""
    import errno

    from oci.linux.cgroups import devices_bpf as d

    fake_kernel.bpf_attached = [7, 8]
    fake_kernel.fail("bpf", errno.EPERM, when=lambda cmd, attr: cmd == d.BPF_PROG_GET_FD_BY_ID and attr[0] == 7)
    v2[0].apply({})
    assert [step for step in _bpf_steps(fake_kernel) if step[0] == "get"] == [("get", 7), ("get", 8)]
    assert fake_kernel.bpf_attached[0] == 7 and len(fake_kernel.bpf_attached) == 2  # 8 replaced
    fake_kernel.fail("bpf", errno.EBUSY, when=lambda cmd, attr: cmd == d.BPF_PROG_DETACH, times=5)
    fake_kernel.bpf_attached.append(9)
    with pytest.raises(CgroupError, match=r"^cgroup: /linux/resources/devices: detaching an earlier device "
                                          r"program: bpf: Device or resource busy$"):
        v2[0].apply({})


@pytest.mark.parametrize("memory, files", [
    ({"limit": 1 << 26, "swap": 1 << 26}, {"memory.max": str(1 << 26), "memory.swap.max": "0"}),  # no swap at all
    ({"limit": 1 << 26, "swap": 3 << 25}, {"memory.max": str(1 << 26), "memory.swap.max": str(1 << 25)}),
    ({"limit": 1 << 26, "swap": -1}, {"memory.max": str(1 << 26), "memory.swap.max": "max"}),
    ({"limit": -1}, {"memory.max": "max", "memory.swap.max": "max"}),  # both unlimited, as runc
    ({"limit": 1 << 26, "reservation": 0, "swap": 0}, {"memory.max": str(1 << 26), "memory.low": "",
                                                       "memory.swap.max": ""}),  # 0: left as it is
])
def test_v2_memory_as_runc_converts_it(v2, memory, files):
    cgroup, folder = v2
    (folder / "memory.swap.max").write_text("")
    (folder / "memory.low").write_text("")
    cgroup.apply({"memory": memory})
    assert {name: (folder / name).read_text() for name in files} == files


@pytest.mark.parametrize("memory, message", [
    ({"swap": 1 << 26}, "swap: a swap limit needs a memory limit"),
    ({"limit": -1, "swap": 1 << 26}, "swap: a swap limit needs a memory limit"),
    ({"limit": 1 << 26, "swap": 1 << 25}, "swap: 33554432 is below the memory limit 67108864"),
])
def test_v2_memory_swap_that_cannot_be_converted_is_refused(v2, memory, message):
    cgroup, folder = v2
    (folder / "memory.swap.max").write_text("")
    with pytest.raises(CgroupError, match=message):
        cgroup.apply({"memory": memory})


def test_v2_hugetlb_limit_zero_allows_none(v2):
    cgroup, folder = v2
    cgroup.apply({"hugepageLimits": [{"pageSize": "2MB", "limit": 0}]})
    assert (folder / "hugetlb.2MB.max").read_text() == "0"


def test_cgroup_trees_listed_and_removed_deepest_first(tmp_path, monkeypatch):
    """What the container made below its cgroup (systemd, Docker inside) goes with it."""
    from oci.linux.cgroups import base

    (tmp_path / "c1" / "init" / "sub").mkdir(parents=True)
    (tmp_path / "c1" / "cgroup.procs").write_text("10\n")
    (tmp_path / "c1" / "init" / "cgroup.procs").write_text("11\n12\n")
    (tmp_path / "c1" / "init" / "sub" / "cgroup.procs").write_text("13\n")
    assert sorted(base.tree_pids(str(tmp_path / "c1"))) == [10, 11, 12, 13]
    removed = []
    monkeypatch.setattr(base, "rmdir_retry", lambda path: removed.append(os.path.relpath(path, tmp_path)))
    base.remove_tree(str(tmp_path / "c1"))
    assert removed == ["c1/init/sub", "c1/init", "c1"]
    base.remove_tree(str(tmp_path / "gone"))  # nothing there: nothing to do


class DevicesCgroup:
    """A cgroup v1 devices controller as the kernel's documentation tells it (a default, allow or deny, and
    exceptions with their access); records every write and, after each, whether /dev/null is usable."""

    def __init__(self, folder, listing: str) -> None:
        self.allow_all = listing.strip() == "a *:* rwm"
        self.exceptions = {} if self.allow_all else {tuple(line.split()[:2]): set(line.split()[2])
                                                     for line in listing.splitlines()}
        (folder / "devices.list").write_text(listing)
        self.writes: list[tuple[str, str]] = []
        self.null_usable: list[bool] = []

    def write(self, path: str, value: str) -> None:
        name = os.path.basename(path)
        allow = name == "devices.allow"
        self.writes.append((name, value))
        if value == "a":
            self.allow_all, self.exceptions = allow, {}
        else:
            kind, numbers, access = value.split()
            if allow != self.allow_all:
                self.exceptions.setdefault((kind, numbers), set()).update(access)
            elif (kind, numbers) in self.exceptions:
                self.exceptions[(kind, numbers)] -= set(access)
        self.null_usable.append(self.usable("c", 1, 3, "rw"))

    def usable(self, kind: str, major: int, minor: int, access: str) -> bool:
        def covers(key: tuple[str, str]) -> bool:
            want_major, want_minor = key[1].split(":")
            return key[0] in (kind, "a") and want_major in ("*", str(major)) and want_minor in ("*", str(minor))

        excepted = any(covers(key) and set(access) <= granted for key, granted in self.exceptions.items())
        return excepted != self.allow_all


# What devices.list shows for runc's (and Docker's) defaults: deny all, the default devices.
DEFAULTS_LISTED = "\n".join(["c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",
                             "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm"])
DOCKER_DEVICES = [{"allow": False, "access": "rwm"},
                  {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]


@pytest.fixture
def v1_devices(tmp_path, monkeypatch):
    folder = tmp_path / "devices" / "ocikit" / "c1"
    folder.mkdir(parents=True)

    def devices(listing: str) -> DevicesCgroup:
        fake = DevicesCgroup(folder, listing)
        monkeypatch.setattr(oci.linux.cgroups.v1, "write", fake.write)
        return fake

    return V1Manager("/ocikit/c1", [("cgroup", str(tmp_path / "devices"), {"devices"})]), devices


@pytest.mark.parametrize("listed", [[], DOCKER_DEVICES])
def test_v1_devices_a_new_cgroup_allows_the_defaults_only(v1_devices, listed):
    """A new cgroup inherits allow-all: reset to deny-all first (no process is in it yet), as runc does."""
    cgroup, devices = v1_devices
    fake = devices("a *:* rwm")
    cgroup.apply({"devices": listed})
    assert fake.writes[0] == ("devices.deny", "a")
    assert all(name == "devices.allow" for name, _ in fake.writes[1:])
    assert fake.usable("c", 1, 3, "rwm") and fake.usable("c", 136, 4, "rw") and fake.usable("b", 8, 0, "m")
    assert not fake.usable("c", 10, 200, "r") and not fake.usable("b", 8, 0, "r")


def test_v1_devices_a_cgroup_already_at_the_rules_is_not_touched(v1_devices):
    """A cgroupsPath that names a cgroup with processes and these rules: no write, no moment without devices."""
    cgroup, devices = v1_devices
    fake = devices(DEFAULTS_LISTED)
    cgroup.apply({"devices": DOCKER_DEVICES})
    assert fake.writes == []


def test_v1_devices_only_the_difference_is_written(v1_devices):
    """What goes and what comes, never the deny-all that would take /dev/null from the processes inside."""
    cgroup, devices = v1_devices
    fake = devices(DEFAULTS_LISTED.replace("c 1:9 rwm", "c 1:9 r") + "\nc 10:200 rwm")
    cgroup.apply({})
    assert fake.writes == [("devices.deny", "c 10:200 rwm"), ("devices.allow", "c 1:9 wm")]
    assert all(fake.null_usable)
    assert fake.usable("c", 1, 9, "rw") and not fake.usable("c", 10, 200, "r")


def test_v1_devices_a_hole_in_a_wider_rule_is_refused(v1_devices):
    """cgroup v1 ignores the deny of one device inside an allowed wildcard: refused, as runc refuses it."""
    cgroup, devices = v1_devices
    fake = devices("a *:* rwm")
    with pytest.raises(CgroupError, match=r"/linux/resources/devices/1: c 1:3 rwm .* wider rule c \*:\* rwm"):
        cgroup.apply({"devices": [{"allow": True, "type": "c", "access": "rwm"},
                                  {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]})
    assert fake.writes == []


def test_v1_devices_update_leaves_them_alone(v1_devices):
    """`oci-run update -r` changes limits only: the device rules stay as create wrote them (as runc's update)."""
    cgroup, devices = v1_devices
    fake = devices(DEFAULTS_LISTED)
    cgroup.update({"devices": [{"allow": False, "access": "rwm"}]})
    assert fake.writes == []


def test_v1_devices_without_the_controller(tmp_path, monkeypatch):
    """No devices hierarchy: nothing to keep when the config lists no rule, one line when it lists some."""
    monkeypatch.setattr(oci.linux.cgroups.v1, "write", lambda path, value: None)
    (tmp_path / "pids" / "ocikit" / "c1").mkdir(parents=True)
    cgroup = V1Manager("/ocikit/c1", [("cgroup", str(tmp_path / "pids"), {"pids"})])
    cgroup.apply({})
    with pytest.raises(CgroupError, match="devices controller is not mounted"):
        cgroup.apply({"devices": DOCKER_DEVICES})
