"""oci-run's pause/resume/update/ps/events pieces that need no root: sizes, durations, the resources
document, the paused status, and the cgroup v2 files written by freeze and update (in a fake tree)."""

import json
import os

import pytest
from oci_run import quick_parse, verb_parser

from oci.errors import InvalidDocument, InvalidInput, UsageError
from oci.linux.cgroups.v2 import V2Manager
from oci.runtime.control import load_resources, parse_bytes
from oci.runtime.state import FREEZER_LINK, Container, process_start_time
from oci.runtime.stats import parse_interval


@pytest.mark.parametrize("text, value", [
    ("1024", 1024), ("-1", -1), ("64m", 64 << 20), ("64M", 64 << 20), ("1g", 1 << 30), ("1.5k", 1536),
    ("2mb", 2 << 20), ("2MiB", 2 << 20), ("512 k", 512 << 10), ("10b", 10),
])
def test_sizes_as_runc_takes_them(text, value):
    assert parse_bytes(text, "--memory") == value


@pytest.mark.parametrize("text", ["", "12q", "m", "-2", "1e3", "ten"])
def test_bad_sizes_name_the_flag(text):
    with pytest.raises(InvalidInput, match="--memory-swap"):
        parse_bytes(text, "--memory-swap")


@pytest.mark.parametrize("text, seconds", [("5s", 5), ("200ms", 0.2), ("1m30s", 90), ("1h", 3600), ("2", 2),
                                           ("0.5", 0.5)])
def test_intervals_as_go_durations(text, seconds):
    assert parse_interval(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["5 s", "fast", "5x", "s"])
def test_bad_intervals(text):
    with pytest.raises(UsageError, match="--interval"):
        parse_interval(text)


def test_resources_document_validated_with_what_update_leaves_alone_noted():
    doc = {"memory": {"limit": 1 << 25, "swap": 1 << 26, "reservation": 1 << 24}, "pids": {"limit": 5}}
    notes: list[str] = []
    assert load_resources(json.dumps(doc).encode(), "r.json", notes) == doc
    assert notes == []
    with pytest.raises(InvalidDocument) as err:
        load_resources(b'{"memory": {"limit": "big"}, "pids": {}}', "r.json")
    assert err.value.lines() == ["r.json: /memory/limit: 'big' is not of type 'integer' (and 1 more: /pids)"]
    with pytest.raises(InvalidDocument, match="not valid JSON"):
        load_resources(b"{", "r.json")


def test_a_full_cri_update_is_taken_and_what_runc_leaves_alone_is_noted():
    """containerd's UpdateContainerResources hands runc the container's whole LinuxResources."""
    doc = {"devices": [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1, "minor": 3,
                                                             "access": "rwm"}],
           "memory": {"limit": 1 << 26, "swappiness": 60, "kernel": 0, "disableOOMKiller": False},
           "cpu": {"shares": 512, "quota": 20000, "period": 100000, "cpus": "0", "mems": ""},
           "hugepageLimits": [{"pageSize": "2MB", "limit": 0}], "pids": {"limit": 0},
           "blockIO": {"weight": 0}, "unified": {}, "Rdma": {}, "future": {"x": 1}}
    notes: list[str] = []
    assert load_resources(json.dumps(doc).encode(), "r.json", notes)["cpu"]["shares"] == 512
    assert notes == ["r.json: /Rdma: read as 'rdma', as Go's JSON decoder reads it",
                     "r.json: /devices: ignored: update leaves it as it is (as runc does)",
                     "r.json: /memory/swappiness: ignored: update leaves it as it is (as runc does)",
                     "r.json: /hugepageLimits: ignored: update leaves it as it is (as runc does)",
                     "r.json: /future: unknown property ignored"]  # no-op values (kernel 0, ...) say nothing


def test_update_flags_runc_has():
    from oci.runtime.control import resources_from_flags

    assert resources_from_flags({"--blkio-weight": 300, "--cpu-rt-period": 1000, "--cpu-rt-runtime": 500}) == {
        "memory": {}, "cpu": {"realtimePeriod": 1000, "realtimeRuntime": 500}, "blockIO": {"weight": 300}}


def test_verb_flags():
    opts = verb_parser("ps").parse_args(["c1", "-o", "pid,comm"])
    assert (opts.id, opts.format, opts.ps_args) == ("c1", "table", ["-o", "pid,comm"])
    opts = verb_parser("update").parse_args(["--resources=-", "c1"])
    assert (opts.resources, opts.memory, opts.cpu_share, opts.blkio_weight, opts.refused_cpu_idle) == (
        "-", None, None, None, None)
    opts = verb_parser("events").parse_args(["--stats", "c1"])
    assert (opts.stats, opts.interval) == (True, "5s")


@pytest.mark.parametrize("verb, args", [
    ("pause", ["c1"]), ("resume", ["c1"]), ("ps", ["-f", "json", "c1"]), ("ps", ["c1"]),
    ("events", ["--stats", "c1"]), ("events", ["--interval=2s", "c1"]),
    ("update", ["--memory", "64m", "--memory-swap=128m", "--pids-limit", "10", "c1"]),
    ("update", ["--resources=/r.json", "c1"]), ("update", ["--blkio-weight", "300", "--cpu-rt-period", "1000", "c1"]),
    ("update", ["--cpu-share", "512", "--cpu-quota=50000", "--cpu-period", "100000", "--cpuset-cpus", "0-1", "c1"]),
])
def test_quick_parse_agrees_with_argparse(verb, args):
    quick = quick_parse(verb, args)
    assert quick is not None
    full = vars(verb_parser(verb).parse_args(args))
    assert {k: v for k, v in full.items() if k != "ps_args" and not k.startswith("refused_")} == vars(quick)


@pytest.mark.parametrize("verb, args", [("ps", ["c1", "-o", "pid"]), ("update", ["--pids-limit", "-1", "c1"]),
                                        ("update", ["--cpu-idle", "1", "c1"]), ("update", ["-r", "-", "c1"])])
def test_quick_parse_leaves_the_rest_to_argparse(verb, args):
    assert quick_parse(verb, args) is None


def test_paused_status_reads_the_freezer_named_by_pause(tmp_path):
    me = os.getpid()
    container = Container(id="c1", bundle="/b", pid=me, start_time=process_start_time(me) or 0,
                          directory=str(tmp_path))
    assert container.status() == "running"
    freezer = tmp_path / "freezer.state"
    freezer.write_text("FROZEN\n")
    (tmp_path / FREEZER_LINK).write_text(str(freezer))
    assert container.status() == "paused"
    freezer.write_text("THAWED\n")
    assert container.status() == "running"
    container.pid = 0
    freezer.write_text("FROZEN\n")
    assert container.status() == "stopped"


@pytest.fixture
def fake_v2(tmp_path, monkeypatch):
    """A cgroup2-like tree: root/ocikit/c1 with the files freeze, update and stats touch.

    A cgroup file takes each write(2) whole; a regular file keeps what a shorter write leaves
    behind, so writes here replace the file's content."""
    import oci.linux.cgroups.v2

    monkeypatch.setattr(oci.linux.cgroups.v2, "write", lambda path, value: open(path, "w").write(value))
    folder = tmp_path / "ocikit" / "c1"
    folder.mkdir(parents=True)
    for parent in (tmp_path, tmp_path / "ocikit"):
        (parent / "cgroup.subtree_control").write_text("memory pids\n")
    for name, text in {"cgroup.freeze": "0", "cgroup.events": "populated 1\nfrozen 1\n", "memory.max": "max",
                       "memory.swap.max": "max", "memory.low": "0", "pids.max": "max", "memory.current": "4096",
                       "memory.swap.current": "0", "memory.events": "low 0\nmax 2\noom 0\noom_kill 1\n",
                       "memory.stat": "anon 4096\nfile 0\n", "pids.current": "3",
                       "cpu.stat": "usage_usec 10\nuser_usec 6\nsystem_usec 4\n"}.items():
        (folder / name).write_text(text + "\n")
    return V2Manager("/ocikit/c1", [("cgroup2", str(tmp_path), set())]), folder


def test_v2_freeze_update_and_stats_files(fake_v2):
    cgroup, folder = fake_v2
    cgroup.freeze()
    assert (folder / "cgroup.freeze").read_text() == "1" and cgroup.freezer_file() == str(folder / "cgroup.freeze")
    cgroup.update({"memory": {"limit": 32 << 20, "swap": 48 << 20}, "pids": {"limit": 10}})
    assert (folder / "memory.max").read_text() == str(32 << 20)
    assert (folder / "memory.swap.max").read_text() == str(16 << 20)  # the spec's swap counts memory too
    assert (folder / "pids.max").read_text() == "10"
    cgroup.update({"memory": {"swap": 64 << 20}})  # the memory limit in place decides swap alone
    assert (folder / "memory.swap.max").read_text() == str(32 << 20)
    cgroup.update({"memory": {"limit": -1, "swap": -1}, "pids": {"limit": -1}})
    assert [(folder / n).read_text() for n in ("memory.max", "memory.swap.max", "pids.max")] == ["max"] * 3
    stats = cgroup.stats()
    assert stats["memory"]["usage"] == {"limit": (1 << 64) - 1, "usage": 4096, "max": 0, "failcnt": 2}
    assert stats["pids"] == {"current": 3, "limit": 0}
    assert stats["cpu"]["usage"] == {"total": 10000, "kernel": 4000, "user": 6000}
    assert cgroup.oom_kills() == 1
