"""containerd with oci-run as its runtime: `ctr run --runc-binary OCI_RUN IMAGE ID CMD` through the runc v2 shim.

containerd 1.6 comes from Debian (package `containerd`); containerd_env starts a private one
(no cri plugin, no network) and imports a busybox image built by oci-commit. The shim calls
oci-run as it calls runc: `--root RUNC_ROOT/NS --log BUNDLE/log.json --log-format json
[--systemd-cgroup] create|start|state|pause|resume|ps --format json|exec --process|kill|delete`.
"""

from __future__ import annotations

import contextlib
import os
import pty
import select
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration import containerd_env, podman_env
from tests.integration.containerd_env import IMAGE

pytestmark = [pytest.mark.root, pytest.mark.slow]


@pytest.fixture(scope="module")
def ctd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[containerd_env.Containerd]:
    with containerd_env.session(tmp_path_factory) as env:
        yield env


@contextlib.contextmanager
def detached(ctd: containerd_env.Containerd, *flags: str) -> Iterator[tuple[str, int]]:
    """`ctr run -d FLAGS IMAGE ID sleep 60`: the id and the host pid of its init; removed after."""
    container_id = podman_env.unique("ctd")
    ctd.ctr("run", "-d", *ctd.run_flags(), *flags, IMAGE, container_id, "sleep", "60", check=True)
    try:
        yield container_id, ctd.task_pid(container_id)
    finally:
        ctd.remove(container_id)


def memory_limit_file(pid: int) -> Path:
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return podman_env.host_cgroup_file(pid, "", "memory.max")
    return podman_env.host_cgroup_file(pid, "memory", "memory.limit_in_bytes")


def frozen(pid: int) -> bool:
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return podman_env.host_cgroup_file(pid, "", "cgroup.freeze").read_text().strip() == "1"
    return podman_env.host_cgroup_file(pid, "freezer", "freezer.state").read_text().strip() == "FROZEN"


def test_true_exits_zero(ctd):
    done = ctd.ctr("run", "--rm", *ctd.run_flags(), IMAGE, podman_env.unique("ctd"), "true")
    assert done.returncode == 0, done.stderr


def test_exit_status_comes_back_through_ctr(ctd):
    done = ctd.ctr("run", "--rm", *ctd.run_flags(), IMAGE, podman_env.unique("ctd"), "sh", "-c", "exit 7")
    assert done.returncode == 7, done.stderr


def test_stdout_reaches_ctr(ctd):
    done = ctd.ctr("run", "--rm", *ctd.run_flags(), IMAGE, podman_env.unique("ctd"),
                   "sh", "-c", "echo hello from $$; echo to-stderr >&2")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "hello from 1\n", done.stdout  # the init of a new pid namespace
    assert "to-stderr" in done.stderr


def test_null_io(ctd):
    """--null-io hands the runtime a read-only /dev/null as stdout: runc reopens it read-write, so does oci-run."""
    done = ctd.ctr("run", "--rm", "--null-io", *ctd.run_flags(), IMAGE, podman_env.unique("ctd"),
                   "sh", "-c", "echo into-the-void && echo again >&2")
    assert done.returncode == 0, done.stderr
    assert "into-the-void" not in done.stdout + done.stderr


def test_privileged(ctd):
    """--privileged: every capability the host's bounding set has, every host device (/dev/ptmx among them)."""
    done = ctd.ctr("run", "--rm", "--privileged", *ctd.run_flags(), IMAGE, podman_env.unique("ctd"),
                   "sh", "-c", "readlink /dev/ptmx; test -c /dev/zero && grep CapEff /proc/self/status")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split("\n")
    assert lines[0] == "pts/ptmx"
    with open("/proc/self/status") as f:
        host_bounding = next(line.split()[1] for line in f if line.startswith("CapBnd:"))
    assert lines[1].split()[1] == host_bounding


def test_memory_limit_lands_in_the_cgroup(ctd):
    with detached(ctd, "--memory-limit", str(48 << 20)) as (container_id, pid):
        assert memory_limit_file(pid).read_text().strip() == str(48 << 20)
        assert f"/{ctd.namespace}/{container_id}" in Path(f"/proc/{pid}/cgroup").read_text()


def test_cpu_shares_and_quota_land_in_the_cgroup(ctd):
    """ctr asks for cpu.shares 1024 unless told otherwise; --cpus is a CFS quota over a 100 ms period."""
    with detached(ctd, "--cpus", "0.5", "--cpu-shares", "512") as (_, pid):
        if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
            assert podman_env.host_cgroup_file(pid, "", "cpu.weight").read_text().strip() == "20"
            assert podman_env.host_cgroup_file(pid, "", "cpu.max").read_text().strip() == "50000 100000"
        else:
            values = [podman_env.host_cgroup_file(pid, "cpu", name).read_text().strip()
                      for name in ("cpu.shares", "cpu.cfs_quota_us", "cpu.cfs_period_us")]
            assert values == ["512", "50000", "100000"]


def test_detached_task_lifecycle(ctd):
    container_id = podman_env.unique("ctd")
    ctd.ctr("run", "-d", *ctd.run_flags(), IMAGE, container_id, "sleep", "60", check=True)
    try:
        assert ctd.task_status(container_id) == "RUNNING"
        pid = ctd.task_pid(container_id)
        state_dir = ctd.runc_root / ctd.namespace / container_id  # the shim's --root is RUNC_ROOT/NAMESPACE
        assert state_dir.is_dir()
        cgroup_dir = memory_limit_file(pid).parent
        assert cgroup_dir.name == container_id
        ctd.ctr("task", "pause", container_id, check=True)
        assert ctd.task_status(container_id) == "PAUSED"
        assert frozen(pid)
        ctd.ctr("task", "resume", container_id, check=True)
        assert ctd.task_status(container_id) == "RUNNING"
        assert not frozen(pid)
        listed = ctd.ctr("task", "ps", container_id, check=True).stdout.split()
        assert str(pid) in listed
        ctd.ctr("task", "kill", "-s", "KILL", container_id, check=True)
        ctd.wait_status(container_id, "STOPPED")
        done = ctd.ctr("task", "delete", container_id, check=True)
        assert ctd.task_status(container_id) is None, done.stderr
        assert not state_dir.exists()
        assert not cgroup_dir.exists()
        ctd.ctr("container", "rm", container_id, check=True)
        assert container_id not in ctd.ctr("containers", "ls", "-q", check=True).stdout.split()
    finally:
        ctd.remove(container_id)


def test_kill_all_of_a_paused_task(ctd):
    """`ctr task kill -a` is `kill --all ID 9`: every process goes, frozen or not."""
    with detached(ctd) as (container_id, _):
        ctd.ctr("task", "exec", *ctd.exec_flags(), "-d", "--exec-id", "bg", container_id, "sleep", "60", check=True)
        ctd.ctr("task", "pause", container_id, check=True)
        ctd.ctr("task", "kill", "-a", "-s", "KILL", container_id, check=True)
        ctd.wait_status(container_id, "STOPPED")


def test_exec_into_a_running_container(ctd):
    with detached(ctd) as (container_id, _):
        done = ctd.ctr("task", "exec", *ctd.exec_flags(), "--exec-id", "probe", container_id,
                       "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; exit 4")
        assert done.returncode == 4, done.stderr
        assert done.stdout.strip() == "sleep 60"
        # the exec id is free again once its process is gone
        again = ctd.ctr("task", "exec", *ctd.exec_flags(), "--exec-id", "probe", container_id, "true")
        assert again.returncode == 0, again.stderr


def test_systemd_cgroup_flag(ctd):
    slice_name = podman_env.unique("ocikit")
    container_id = podman_env.unique("ctd")
    try:
        done = ctd.ctr("run", "--rm", *ctd.run_flags(), "--runc-systemd-cgroup",
                       "--cgroup", f"{slice_name}.slice:ocikit:{container_id}", IMAGE, container_id,
                       "cat", "/proc/self/cgroup")
        assert done.returncode == 0, done.stderr
        assert f"/{slice_name}.slice/ocikit-{container_id}.scope" in done.stdout
    finally:
        ctd.remove(container_id)
        for hierarchy in Path("/sys/fs/cgroup").iterdir():
            with contextlib.suppress(OSError):
                (hierarchy / f"{slice_name}.slice").rmdir()


def test_runtime_error_reaches_ctr(ctd):
    """oci-run's JSON log line is what the shim reports: a refused field is named in ctr's error."""
    container_id = podman_env.unique("ctd")
    try:
        done = ctd.ctr("run", "--rm", *ctd.run_flags(), "--rdt-class", "gold", IMAGE, container_id, "true")
        assert done.returncode != 0
        assert "/linux/intelRdt: Intel RDT (resctrl) is not implemented" in done.stderr
    finally:
        ctd.remove(container_id)


def run_on_pty(argv: list[str], timeout: float = 20) -> tuple[int, bytes]:
    """Run argv with a new pty as its stdin, stdout and controlling terminal: its exit code and output."""
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    out, deadline = b"", time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([fd], [], [], 0.2)[0]:
                try:
                    data = os.read(fd, 4096)
                except OSError:  # EIO: the child is gone and the pty closed
                    break
                if not data:
                    break
                out += data
        else:
            os.kill(pid, 9)
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), out
    finally:
        os.close(fd)


def test_terminal(ctd):
    code, out = run_on_pty(ctd.ctr_argv("run", "--rm", "-t", *ctd.run_flags(), IMAGE, podman_env.unique("ctd"),
                                        "sh", "-c", "test -t 0 && test -t 1 && echo tty-ok $(tty); exit 5"))
    assert code == 5, out
    assert b"tty-ok /dev/pts/0" in out


def test_exec_with_terminal(ctd):
    with detached(ctd) as (container_id, _):
        code, out = run_on_pty(ctd.ctr_argv("task", "exec", *ctd.exec_flags(), "-t", "--exec-id", "term",
                                            container_id, "sh", "-c", "test -t 0 && echo exec-tty-ok; exit 3"))
        assert code == 3, out
        assert b"exec-tty-ok" in out
