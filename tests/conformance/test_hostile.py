"""Hostile acts from inside a default container are refused.

The default container is ocitest.bundle.default_config: new pid, network, ipc, uts and mount
namespaces, three capabilities (AUDIT_WRITE, KILL, NET_BIND_SERVICE), no_new_privs, the usual
masked and read-only paths. These tests check the isolation config-linux.md promises
(capabilities, masked and readonly paths, namespaces) and that the runtime itself leaks
nothing into the container (file descriptors, its executable: the CVE-2024-21626 and
CVE-2019-5736 classes).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from ocitest.bundle import DEFAULT_MASKED

EPERM, ENOENT, ESRCH, EACCES, ETXTBSY, EROFS = 1, 2, 3, 13, 26, 30


def acts(runtime, bundle, *commands: str) -> list[dict]:
    bundle.checks(*commands).write()
    return runtime.run_lines(bundle.path)


@pytest.mark.spec("config.md#process")
def test_mount_is_refused(runtime, bundle):
    """Without CAP_SYS_ADMIN no mount, and no remount of / either."""
    mount, remount = acts(runtime, bundle, "try mount-tmpfs /tmp", "try remount-root")
    assert (mount["ok"], mount["errno"]) == (False, EPERM)
    assert (remount["ok"], remount["errno"]) == (False, EPERM)


@pytest.mark.spec("config.md#process")
def test_raw_socket_without_cap_net_raw_is_refused(runtime, bundle):
    (raw,) = acts(runtime, bundle, "try raw-socket")
    assert (raw["ok"], raw["errno"]) == (False, EPERM)


@pytest.mark.spec("config.md#process")
def test_raw_socket_with_cap_net_raw_is_allowed(runtime, bundle):
    """The counterpart: granting CAP_NET_RAW makes the same act work (the refusal above is the capability's)."""
    caps = bundle.process["capabilities"]
    for key in ("bounding", "effective", "permitted"):
        caps[key].append("CAP_NET_RAW")
    (raw,) = acts(runtime, bundle, "try raw-socket")
    assert raw["ok"] is True


@pytest.mark.spec("config.md#process")
def test_mknod_and_sethostname_are_refused(runtime, bundle):
    mknod, hostname = acts(runtime, bundle, "try mknod /tmp/mem", "try sethostname")
    assert (mknod["ok"], mknod["errno"]) == (False, EPERM)
    assert (hostname["ok"], hostname["errno"]) == (False, EPERM)


@pytest.mark.spec("config-linux.md#readonly-paths")
@pytest.mark.parametrize("path", ["/proc/sys/kernel/hostname", "/proc/sys/vm/drop_caches", "/proc/sysrq-trigger",
                                  "/sys/kernel/uevent_helper"])
def test_writes_to_proc_sys_and_sys_are_refused(runtime, bundle, path):
    (write,) = acts(runtime, bundle, f"try write {path}")
    assert write["ok"] is False
    assert write["errno"] in (EROFS, EACCES, EPERM, ENOENT)
    assert os.uname().nodename != "escaped"


@pytest.mark.spec("config-linux.md#masked-paths")
def test_masked_paths_cannot_be_read(runtime, bundle):
    """Every default masked path that exists on this kernel reads empty (files) or lists empty (directories)."""
    present = [p for p in DEFAULT_MASKED if os.path.exists(p)]
    commands = [f"try {'list' if os.path.isdir(p) else 'read'} {p}" for p in present]
    results = acts(runtime, bundle, *commands)
    assert [r for r in results if r["ok"]] == []


@pytest.mark.spec("config-linux.md#masked-paths")
def test_unmasked_paths_are_readable(runtime, bundle):
    """The counterpart: without maskedPaths /proc/timer_list and /sys/firmware have content."""
    bundle.linux["maskedPaths"] = []
    timer_list, firmware = acts(runtime, bundle, "try read /proc/timer_list", "try list /sys/firmware")
    assert timer_list["ok"] is True and firmware["ok"] is True


@pytest.mark.spec("config-linux.md#namespaces")
def test_no_host_process_can_be_ptraced(runtime, bundle):
    """In its own pid namespace the process sees only itself: no host pid (the test, the runtime) is reachable."""
    helper = subprocess.Popen(["sleep", "30"])
    try:
        bundle.checker("try", "ptrace-all").write()
        sweep = runtime.run_json(bundle.path)
        assert sweep["ok"] is False and sweep["attached"] == []
        for pid in (os.getpid(), helper.pid, os.getppid()):
            bundle.checker("try", "ptrace", str(pid)).write()
            attach = runtime.run_json(bundle.path)
            assert attach["ok"] is False, pid
    finally:
        helper.kill()
        helper.wait()


@pytest.mark.spec("config-linux.md#namespaces")
def test_ptrace_of_pid_1_is_refused(runtime, bundle):
    """The process is pid 1 of its namespace: attaching to pid 1 is attaching to itself, refused."""
    bundle.checker("try", "ptrace", "1").write()
    attach = runtime.run_json(bundle.path)
    assert attach["ok"] is False


@pytest.mark.spec("runtime.md#create")
def test_waiting_runtime_init_cannot_be_ptraced_from_a_sibling(runtime, make_bundle):
    """A created container's init is runtime code: a container joined to its pid namespace cannot
    attach to it nor open its executable (it must be non-dumpable)."""
    runtime.require("init-not-dumpable")
    first = make_bundle("first")
    first.checker("sleep", "60").write()
    cid = runtime.created(first.path)
    pid = runtime.state(cid).json()["pid"]
    sibling = make_bundle("sibling")
    sibling.set_namespace("pid", f"/proc/{pid}/ns/pid")
    attach, read_exe, write_exe = acts(runtime, sibling, "try ptrace 1", "try read /proc/1/exe",
                                       "try open-write /proc/1/exe")
    assert attach["ok"] is False
    assert read_exe["ok"] is False
    assert write_exe["ok"] is False


@pytest.mark.spec("runtime.md#create")
def test_no_file_descriptor_leaks_into_the_container_with_run(runtime, bundle):
    """Only stdin, stdout and stderr are open in the process; no descriptor leads out through `..`."""
    report, leaked = acts(runtime, bundle, "report", "try leaked-fds")
    assert sorted(report["fds"], key=int) == ["0", "1", "2"]
    assert leaked["ok"] is False and leaked["fds"] == []


@pytest.mark.spec("runtime.md#create")
def test_descriptors_open_in_the_caller_do_not_reach_the_container(runtime, bundle):
    """Directories the runtime's caller left open (the host's / and /sys/fs/cgroup) are not passed on."""
    fds = (os.open("/", os.O_RDONLY | os.O_DIRECTORY), os.open("/sys/fs/cgroup", os.O_RDONLY | os.O_DIRECTORY))
    try:
        bundle.checker("try", "leaked-fds").write()
        result = runtime.run(bundle.path, pass_fds=fds)
    finally:
        for fd in fds:
            os.close(fd)
    leaked = json.loads(result.check().stdout)
    assert leaked["ok"] is False and leaked["fds"] == []


@pytest.mark.spec("runtime.md#create")
def test_no_file_descriptor_leaks_into_the_container_with_create_and_start(runtime, bundle):
    bundle.checker("try", "leaked-fds").write()
    cid = runtime.started(bundle.path)
    runtime.wait_stopped(cid)
    leaked = json.loads(runtime.output(cid))
    assert leaked["ok"] is False and leaked["fds"] == []


@pytest.mark.spec("config.md#process")
def test_cwd_through_proc_self_fd_does_not_escape(runtime, bundle):
    """CVE-2024-21626: cwd /proc/self/fd/N must never land the process outside its root."""
    for fd in range(3, 9):
        bundle.process["cwd"] = f"/proc/self/fd/{fd}"
        bundle.checker("report").write()
        result = runtime.run(bundle.path)
        if result.returncode != 0:
            continue
        cwd = json.loads(result.stdout)["cwd"]
        assert cwd is not None and not cwd.startswith("(unreachable)"), (fd, cwd)
        assert not Path(cwd).is_relative_to("/sys/fs/cgroup") and not cwd.startswith(str(bundle.path)), (fd, cwd)


@pytest.mark.spec("config.md#process")
def test_own_executable_cannot_be_overwritten(runtime, bundle):
    """/proc/self/exe is the container's program, and it cannot be opened for writing (ETXTBSY)."""
    report, write = acts(runtime, bundle, "report", "try open-write /proc/self/exe")
    assert report["exe"] == "/checker"
    assert (write["ok"], write["errno"]) == (False, ETXTBSY)


@pytest.mark.spec("config.md#process")
def test_runtime_executable_is_not_reachable_from_the_container(runtime, bundle, out_dir):
    """While the process runs, no process the container can see has an executable outside its root."""
    script = ("for p in /proc/[0-9]*; do readlink $p/exe; done > /out/exes; "
              "/checker try open-write /proc/1/exe > /out/write; echo done > /out/ready; sleep 30")
    bundle.bind_out(out_dir).args("/bin/sh", "-c", script).write()
    runtime.started(bundle.path)
    deadline = time.monotonic() + 10
    while not (out_dir / "ready").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    exes = set((out_dir / "exes").read_text().split())
    assert exes <= {"/bin/busybox", "/checker"}, exes
    assert json.loads((out_dir / "write").read_text())["ok"] is False
