"""oci-run, oci-mon and ocikit on a pure cgroup v2 host, inside cg2vm's throwaway VM.

One VM boot runs one shell script (a boot costs seconds, and every Python start in the VM about
one: the VM runs code 20-30x slower), which prints `key=value` lines that the test reads back.
Configs are validated and remembered on the host, so the guest's oci-run skips jsonschema.

What it shows, on cgroup v2 only:
* limits land in the right files (memory.max, memory.swap.max as swap minus memory, 0 when both
  are equal; pids.max, cpu.max, cpu.weight, io.weight, hugetlb, unified), as runc converts them;
  swappiness is ignored with a note, as runc ignores it;
* every controller is enabled down to the container's cgroup, limits or not (memory.events is
  there to count OOM kills, stats have memory numbers);
* with no device rules at all, the device program still refuses all but the default devices;
* pause and resume through cgroup.freeze; update; events --stats; ps;
* a container that moved its processes into a cgroup of its own below its root (systemd,
  Docker inside) still takes `exec` (beside its init), and `delete` removes the whole tree;
* an OOM kill counted in memory.events; oci-mon records it (ocikit inspect's OOMKilled);
* `ocikit run -d`, `stats`, `rm -f`, and no cgroup left behind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from oci.runtime import config
from tests.conftest import CG2VM
from tests.integration.ocirun_bundle import Bundle, make_rootfs, unique_id

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable  # the virtualenv's (jsonschema for ocikit), never a pyenv shim: it costs seconds in the VM

pytestmark = [pytest.mark.root, pytest.mark.slow]

MIB = 1 << 20
# The guest's script: `say KEY COMMAND...` prints KEY=its output on one line (stderr too).
PRELUDE = """
say() { k=$1; shift; printf '%s=%s\\n' "$k" "$("$@" 2>&1 | tr '\\n' ' ' | sed 's/ *$//')"; }
exists() { test -e "$1" && echo yes || echo no; }
wait_for() { i=0; while ! eval "$1" 2>/dev/null; do i=$((i+1)); [ $i -gt 600 ] && return 1; sleep 0.1; done; }
"""


def _dev_bundle(base: Path, template: Path, path: str) -> Bundle:
    """Limits of every kind, no device rules at all; prints what it sees of its cgroup and devices."""
    bundle = Bundle(base / "dev", template)
    bundle.config["linux"]["cgroupsPath"] = path
    bundle.config["linux"]["resources"] = {
        "memory": {"limit": 32 * MIB, "swap": 32 * MIB, "reservation": 0, "swappiness": 10},
        "pids": {"limit": 17}, "cpu": {"shares": 512, "quota": 50000, "period": 100000},
        "blockIO": {"weight": 500}, "hugepageLimits": [{"pageSize": "2MB", "limit": 0}],
        "unified": {"memory.high": str(30 * MIB)}}
    for capabilities in ("bounding", "effective", "permitted"):
        bundle.config["process"]["capabilities"][capabilities].append("CAP_MKNOD")
    files = "memory.max memory.swap.max memory.high memory.low pids.max cpu.max cpu.weight io.weight hugetlb.2MB.max"
    bundle.args("sh", "-c", "echo cgroup=$(cat /proc/self/cgroup); "
                f"for f in {files}; do echo $f=$(cat /sys/fs/cgroup/$f); done; "
                "echo zero=$(head -c1 /dev/zero | wc -c); mknod /dev/m c 1 1 && echo mknod=ok; "
                "head -c1 /dev/m >/dev/null 2>&1 && echo mem=read || echo mem=refused; exit 5")
    bundle.write()
    return bundle


def _nested_bundle(base: Path, template: Path, path: str) -> Bundle:
    """A container that does what systemd or Docker inside one does: its processes in a cgroup of
    their own below its root, controllers enabled in its root (a read-write /sys/fs/cgroup)."""
    bundle = Bundle(base / "nested", template)
    bundle.config["linux"]["cgroupsPath"] = path
    bundle.config["linux"]["resources"] = {"devices": [{"allow": False, "access": "rwm"}]}  # no limit
    for mount in bundle.config["mounts"]:
        if mount["destination"] == "/sys/fs/cgroup":
            mount["options"] = [o for o in mount["options"] if o != "ro"]
    bundle.args("sh", "-c", "mkdir /sys/fs/cgroup/init && echo $$ > /sys/fs/cgroup/init/cgroup.procs && "
                "echo '+memory +pids' > /sys/fs/cgroup/cgroup.subtree_control && exec sleep 1000")
    bundle.write()
    return bundle


def _ocikit_root(base: Path, template: Path) -> Path:
    """An ocikit state root holding a busybox image tagged busybox:cg2 (loaded here, copied to the guest)."""
    root = base / "kit"
    layout = base / "layout"
    subprocess.run([sys.executable, str(ROOT / "bin" / "oci_commit.py"), "-q", "--from-dir", str(template),
                    "--owner", "0:0", "--cmd", "/bin/sh", "--env", "PATH=/bin", f"{layout}:busybox"],
                   capture_output=True, check=True, timeout=60, env={**os.environ, "SOURCE_DATE_EPOCH": "0"})
    archive = base / "busybox.tar"
    subprocess.run(["tar", "-cf", str(archive), "-C", str(layout), "."], check=True)
    kit = [sys.executable, str(ROOT / "bin" / "ocikit.py"), "--root", str(root)]
    loaded = subprocess.run([*kit, "load", "-i", str(archive)], capture_output=True, text=True, timeout=60)
    assert loaded.returncode == 0, loaded.stderr
    image = loaded.stdout.split("sha256:")[1].strip()
    subprocess.run([*kit, "tag", image, "busybox:cg2"], capture_output=True, check=True, timeout=60)
    shutil.rmtree(layout)
    archive.unlink()
    return root


@pytest.mark.skipif(not os.access(CG2VM, os.X_OK), reason=f"no cg2vm at {CG2VM}")
def test_runtime_monitor_and_ocikit_on_cgroup_v2(tmp_path, monkeypatch):
    template = make_rootfs(tmp_path / "template")
    for applet in ("tail", "mknod"):
        os.symlink("busybox", template / "bin" / applet)
    parent = f"/{unique_id('ocikit-cg2')}"
    dev, nested = unique_id("dev"), unique_id("nested")
    dev_bundle = _dev_bundle(tmp_path, template, f"{parent}/{dev}")
    nested_bundle = _nested_bundle(tmp_path, template, f"{parent}/{nested}")
    monkeypatch.setenv("OCIKIT_CACHE_DIR", str(tmp_path / "cache"))
    for bundle in (dev_bundle, nested_bundle):
        config.load(str(bundle.path))  # remembered as oci-run remembers it: the guest skips jsonschema
    kit_seed = _ocikit_root(tmp_path, template)
    run = f"{PYTHON} {ROOT}/bin/oci_run.py --root /run/ocirun"
    kit = f"{PYTHON} {ROOT}/bin/ocikit.py --root /tmp/kit"
    cg = f"/sys/fs/cgroup{parent}"
    script = PRELUDE + f"export PYTHONPATH={ROOT}\n" + "\n".join([
        # A container with limits and no device rules, in the foreground.
        f"{run} --log /tmp/dev.log --log-format json run -b {dev_bundle.path} {dev}; echo dev-rc=$?",
        "say swappiness-note grep -c 'memory/swappiness: ignored' /tmp/dev.log",
        f"say dev-left exists {cg}/{dev}",
        # Controllers enabled down to it; a container with no limit still counts OOM kills.
        f"say parent-controllers cat {cg}/cgroup.subtree_control",
        f"{run} run -d -b {nested_bundle.path} {nested} </dev/null >/dev/null; echo nested-rc=$?",
        f"wait_for 'grep -q memory {cg}/{nested}/cgroup.subtree_control' || echo nested-never-moved",
        f"say events-file exists {cg}/{nested}/memory.events",
        f"{run} events --stats {nested} > /tmp/stats.json; echo stats-rc=$?",
        f"say stats-memory {PYTHON} -c \"import json; d = json.load(open('/tmp/stats.json'))['data'];"
        " print(d['memory']['usage']['usage'] > 0, d['pids']['current'])\"",
        # exec beside the init, ps of the whole tree, pause, resume, update, an OOM kill.
        f"say exec {run} exec {nested} cat /proc/self/cgroup",
        f"say ps-count {run} ps --format json {nested}",
        f"say init-cgroup cat {cg}/{nested}/init/cgroup.procs",
        f"{run} pause {nested}; echo pause-rc=$?",
        f"say status sh -c \"{run} state {nested} | grep -o '\\\"status\\\": \\\"[a-z]*\\\"'\"",
        f"say frozen grep frozen {cg}/{nested}/cgroup.events",
        f"{run} resume {nested}; echo resume-rc=$?",
        f"say thawed grep frozen {cg}/{nested}/cgroup.events",
        f"{run} update --memory 16m --memory-swap 16m --pids-limit 20 --cpu-share 1024 --cpu-quota 25000 {nested};"
        " echo update-rc=$?",
        f"say updated cat {cg}/{nested}/memory.max {cg}/{nested}/memory.swap.max {cg}/{nested}/pids.max "
        f"{cg}/{nested}/cpu.max {cg}/{nested}/cpu.weight",
        f"{run} exec {nested} sh -c 'head -c 64m /dev/zero | tail' 2>/tmp/hog.err; echo hog-rc=$?",
        "say hog-err cat /tmp/hog.err",
        f"say oom-kills grep oom_kill {cg}/{nested}/memory.events",
        f"{run} pause {nested}; {run} delete --force {nested}; echo delete-rc=$?",
        f"say nested-left exists {cg}/{nested}",
        # ocikit: run -d (oci-mon watches it), stats, stop, OOMKilled, rm -f, nothing left.
        f"cp -a {kit_seed} /tmp/kit",
        f"{kit} run -d --name hog --network none -m 16m busybox:cg2 sh -c "
        "'head -c 64m /dev/zero | tail; exec sleep 1000' > /tmp/kit.id; echo kit-run-rc=$?",
        f"say kit-stats {kit} stats --no-stream --format '{{{{.MemUsage}}}} {{{{.PIDs}}}}' hog",
        f"say kit-stop {kit} stop -t 0 hog",
        f"say kit-oom {kit} inspect --format '{{{{.State.OOMKilled}}}}' hog",
        f"say kit-rm {kit} rm -f hog",
        "say kit-left exists /sys/fs/cgroup/ocikit/$(cat /tmp/kit.id)",
        "say kit-cgroups find /sys/fs/cgroup/ocikit -mindepth 1 -type d",
    ])
    # A guard, not a timing: alone the VM takes a minute or so, but beside a whole `make test` and other
    # suites on the same two cores it ran past 280 s; a hang still ends the test.
    result = subprocess.run([CG2VM, "--share", str(tmp_path), "--timeout", "900", "--", "sh", "-c", script],
                            capture_output=True, text=True, timeout=960)
    print(result.stderr)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    seen: dict[str, str] = {}
    for line in result.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep and key not in seen:
            seen[key] = value
    report = result.stdout + result.stderr[-2000:]

    # Limits in the right files, as runc converts them; the device program without device rules.
    assert seen.get("cgroup") == "0::/", report  # its cgroup namespace
    assert [seen.get(k) for k in ("memory.max", "memory.swap.max", "memory.high", "memory.low", "pids.max",
                                  "cpu.max", "cpu.weight", "io.weight", "hugetlb.2MB.max")] == \
        [str(32 * MIB), "0", str(30 * MIB), "0", "17", "50000 100000", "20", "default 4950", "0"], report
    assert (seen.get("zero"), seen.get("mknod"), seen.get("mem")) == ("1", "ok", "refused"), report
    assert seen.get("dev-rc") == "5" and seen.get("swappiness-note") == "1", report
    assert seen.get("dev-left") == "no", report

    # Every controller enabled down to the container, limits or not.
    assert {"cpu", "io", "memory", "pids"} <= set(seen.get("parent-controllers", "").split()), report
    assert seen.get("nested-rc") == "0" and "nested-never-moved" not in seen, report
    assert seen.get("events-file") == "yes", report
    assert seen.get("stats-rc") == "0" and seen.get("stats-memory") == "True 1", report

    # exec beside the init; the tree's processes; freeze and thaw; update; the OOM kill.
    assert seen.get("exec") == "0::/init", report
    assert len(json.loads(seen.get("ps-count") or "[]")) == 1 == len(seen.get("init-cgroup", "").split()), report
    assert (seen.get("pause-rc"), seen.get("status"), seen.get("frozen")) == ("0", '"status": "paused"',
                                                                               "frozen 1"), report
    assert (seen.get("resume-rc"), seen.get("thawed")) == ("0", "frozen 0"), report
    assert seen.get("update-rc") == "0" and seen.get("updated") == f"{16 * MIB} 0 20 25000 100000 39", report
    assert seen.get("hog-rc") == "137" and seen.get("oom-kills", "").split()[-1:] != ["0"], report
    assert (seen.get("delete-rc"), seen.get("nested-left")) == ("0", "no"), report

    # ocikit: stats from the cgroup, OOMKilled from memory.events through oci-mon, nothing left.
    assert seen.get("kit-run-rc") == "0", report
    # its limit, and its processes: 1 once the OOM killer has taken the hog, 3 before (stats may come first)
    assert re.search(r" / 16MiB [13]$", seen.get("kit-stats", "")), report
    assert seen.get("kit-oom") == "true", report
    assert (seen.get("kit-rm"), seen.get("kit-left"), seen.get("kit-cgroups")) == ("hog", "no", ""), report


def _cgroup2_mount() -> str | None:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[fields.index("-") + 1] == "cgroup2":
                return fields[4]
    return None


@pytest.mark.skipif(_cgroup2_mount() is None, reason="no cgroup2 hierarchy mounted")
def test_device_rules_as_a_bpf_program(tmp_path):
    """The cgroup v2 device program (attached here to the host's cgroup2 hierarchy, hybrid or not)."""
    from oci.linux.cgroups import devices_bpf
    from oci.linux.cgroups.base import DEFAULT_ALLOWED

    folder = os.path.join(_cgroup2_mount(), unique_id("ocikit-bpf"))
    os.mkdir(folder)
    try:
        rules = [{"allow": False, "access": "rwm"}, *DEFAULT_ALLOWED,
                 {"allow": False, "type": "c", "major": 1, "minor": 5, "access": "w"}]
        devices_bpf.attach(folder, rules)
        script = (f"echo $$ > {folder}/cgroup.procs; head -c1 /dev/null && echo null-ok; "
                  f"head -c1 /dev/zero | wc -c; echo x > /dev/zero || echo zero-write-refused; "
                  f"mknod {tmp_path}/mem c 1 1 && head -c1 {tmp_path}/mem || echo mem-refused")
        result = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
        assert result.stdout.split() == ["null-ok", "1", "zero-write-refused", "mem-refused"], result.stderr
    finally:
        os.rmdir(folder)


@pytest.mark.skipif(_cgroup2_mount() is None, reason="no cgroup2 hierarchy mounted")
def test_device_rules_loosened_replace_the_program(tmp_path):
    """A second set of device rules takes the first one's place (as runc's): the kernel allows a device
    only if every program attached allows it, so one left behind would go on refusing. Through both
    of the kernel's ways: BPF_F_REPLACE of the one there, and attach-then-detach of several (those
    an older ocikit piled up)."""
    from oci.linux.cgroups import devices_bpf
    from oci.linux.cgroups.base import DEFAULT_ALLOWED

    def attached(folder: str) -> int:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            programs = devices_bpf._attached(fd)
        finally:
            os.close(fd)
        assert programs is not None
        for program in programs:
            os.close(program)
        return len(programs)

    def zero_write(folder: str) -> str:
        script = f"echo $$ > {folder}/cgroup.procs; echo x > /dev/zero && echo zero-written || echo zero-refused"
        result = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
        return result.stdout.strip()

    strict = [*DEFAULT_ALLOWED, {"allow": False, "type": "c", "major": 1, "minor": 5, "access": "w"}]
    folder = os.path.join(_cgroup2_mount(), unique_id("ocikit-bpfswap"))
    os.mkdir(folder)
    try:
        devices_bpf.attach(folder, strict)
        assert (zero_write(folder), attached(folder)) == ("zero-refused", 1)
        devices_bpf.attach(folder, DEFAULT_ALLOWED)  # one there: replaced in one step
        assert (zero_write(folder), attached(folder)) == ("zero-written", 1)

        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for _ in range(2):  # as ocikit before this change did: programs beside the one there
                program = devices_bpf._load(strict)
                devices_bpf._attach(fd, program)
                os.close(program)
        finally:
            os.close(fd)
        assert (zero_write(folder), attached(folder)) == ("zero-refused", 3)
        devices_bpf.attach(folder, DEFAULT_ALLOWED)  # three there: attach, then detach them
        assert (zero_write(folder), attached(folder)) == ("zero-written", 1)
    finally:
        os.rmdir(folder)
