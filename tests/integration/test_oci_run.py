"""oci-run against the real kernel: lifecycle, exit status, stdio and terminals, hooks, cgroups, isolation."""

from __future__ import annotations

import json
import os
import pty
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.integration.ocirun_bundle import Bundle, OciRun, make_rootfs, unique_id

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def rootfs_template(tmp_path_factory):
    return make_rootfs(tmp_path_factory.mktemp("ocirun-rootfs") / "rootfs")


@pytest.fixture
def oci(tmp_path):
    runtime = OciRun(tmp_path / "state")
    yield runtime
    runtime.cleanup()


@pytest.fixture
def bundle(tmp_path, rootfs_template):
    return Bundle(tmp_path / "bundle", rootfs_template)


def test_create_start_state_kill_delete(oci, bundle, tmp_path):
    cid = unique_id()
    pid_file = tmp_path / "pid"
    bundle.args("sleep", "100").write()
    result = oci("create", "--bundle", str(bundle.path), "--pid-file", str(pid_file), cid)
    assert result.returncode == 0, result.stderr
    state = oci.state(cid)
    assert state["status"] == "created" and state["id"] == cid and state["bundle"] == str(bundle.path)
    assert int(pid_file.read_text()) == state["pid"] > 0
    again = oci("create", "--bundle", str(bundle.path), cid)
    assert again.returncode == 7 and "container with id exists" in again.stderr
    assert oci("start", cid).returncode == 0
    assert oci.state(cid)["status"] == "running"
    assert os.readlink(f"/proc/{state['pid']}/exe").endswith("busybox")
    refused = oci("delete", cid)
    assert refused.returncode == 7 and "not stopped" in refused.stderr
    listed = json.loads(oci("list", "--format", "json").stdout)
    assert [c["id"] for c in listed] == [cid]
    assert oci("kill", cid, "KILL").returncode == 0
    deadline = time.monotonic() + 5
    while oci.state(cid)["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert oci.state(cid)["status"] == "stopped"
    again = oci("kill", cid, "KILL")
    assert again.returncode == 7 and "container not running" in again.stderr
    assert oci("delete", cid).returncode == 0
    gone = oci("state", cid)
    assert gone.returncode == 3 and "does not exist" in gone.stderr


def test_run_exits_with_the_containers_status(oci, bundle):
    bundle.args("sh", "-c", "echo out; echo err >&2; exit 7").write()
    result = oci("run", "--bundle", str(bundle.path), unique_id())
    assert (result.returncode, result.stdout, result.stderr) == (7, "out\n", "err\n")
    assert oci("list", "-q").stdout == ""


def test_run_reports_a_killed_container_as_128_plus_signal(oci, bundle):
    bundle.args("sleep", "30").write()
    cid = unique_id()
    proc = subprocess.Popen(oci.argv("run", "--bundle", str(bundle.path), cid), stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        state = oci("state", cid)
        if state.returncode == 0 and json.loads(state.stdout)["status"] == "running":
            break
        time.sleep(0.05)
    assert oci("kill", cid, "SIGKILL").returncode == 0
    assert proc.wait(timeout=10) == 137
    assert oci("list", "-q").stdout == ""


def test_missing_executable_fails_create(oci, bundle):
    bundle.args("no-such-program").write()
    cid = unique_id()
    result = oci("create", "--bundle", str(bundle.path), cid)
    assert result.returncode != 0 and "executable file not found in $PATH" in result.stderr
    assert oci("list", "-q").stdout == ""


def test_process_identity_and_isolation(oci, bundle):
    proc = bundle.config["process"]
    proc["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [5, 6], "umask": 0o077}
    proc["cwd"] = "/tmp"
    proc["env"].append("GREETING=hi")
    proc["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456}]
    script = ("id; pwd; umask; echo $GREETING; hostname; ulimit -n; grep -E '^(NoNewPrivs|CapEff|Seccomp):' "
              "/proc/self/status; cat /proc/1/cmdline | tr '\\0' ' '; echo; ls /proc/self/fd")
    bundle.args("sh", "-c", script).write()
    result = oci("run", "--bundle", str(bundle.path), unique_id())
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "uid=1000 gid=1000 groups=5,6"
    assert lines[1:6] == ["/tmp", "0077", "hi", "ocirun-test", "123"]
    status = dict(line.split() for line in lines[6:9])
    assert status == {"NoNewPrivs:": "1", "Seccomp:": "0", "CapEff:": "0000000000000000"}
    assert lines[9].startswith("sh -c")
    assert lines[10:] == ["0", "1", "2", "3"]  # 3 is ls's own directory


def test_no_fds_leak_and_preserve_fds(oci, bundle, tmp_path):
    leaked = os.open(tmp_path, os.O_RDONLY)
    os.set_inheritable(leaked, True)
    try:
        bundle.args("ls", "/proc/self/fd").write()
        result = oci("run", "--bundle", str(bundle.path), unique_id(), pass_fds=(leaked,))
        assert result.stdout.split() == ["0", "1", "2", "3"]
        reader, writer = os.pipe()
        os.dup2(writer, 3) if leaked != 3 else None
        bundle.args("sh", "-c", "echo through-fd3 >&3").write()
        result = oci("run", "--preserve-fds", "1", "--bundle", str(bundle.path), unique_id(),
                     pass_fds=(3,) if leaked != 3 else (leaked,))
        assert result.returncode == 0, result.stderr
    finally:
        os.close(leaked)
    if leaked != 3:
        os.close(writer)
        os.close(3)
        assert os.read(reader, 100) == b"through-fd3\n"
        os.close(reader)


def test_hostile_acts_are_refused(oci, bundle):
    script = ("mount -t tmpfs t /mnt 2>/dev/null && echo MOUNTED; "
              "echo 1 > /proc/sys/kernel/hostname 2>/dev/null && echo SYSCTL; "
              "cat /proc/kcore 2>/dev/null | head -c1 | wc -c; "
              "readlink /proc/1/exe; ls /proc/1/fd; "
              "touch /sys/x 2>/dev/null && echo SYSWRITE; echo done")
    bundle.config["root"]["readonly"] = True
    bundle.args("sh", "-c", script).write()
    result = oci("run", "--bundle", str(bundle.path), unique_id())
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split()
    assert "MOUNTED" not in lines and "SYSCTL" not in lines and "SYSWRITE" not in lines
    assert lines[0] == "0"
    assert lines[1] == "/bin/busybox"
    assert lines[2:5] == ["0", "1", "2"] and lines[-1] == "done"


def test_console_socket_receives_the_pty_master(oci, bundle, tmp_path):
    path = str(tmp_path / "console.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    bundle.config["process"]["terminal"] = True
    bundle.args("sh", "-c", "test -t 0 && test -t 1 && echo on-a-tty; readlink /proc/self/fd/0; sleep 2").write()
    cid = unique_id()
    result = oci("create", "--bundle", str(bundle.path), "--console-socket", path, cid)
    assert result.returncode == 0, result.stderr
    conn, _ = server.accept()
    _, fds, _, _ = socket.recv_fds(conn, 1024, 1)
    master = fds[0]
    assert oci("start", cid).returncode == 0
    output = b""
    deadline = time.monotonic() + 5
    while b"/dev/pts/" not in output and time.monotonic() < deadline:
        output += os.read(master, 1024)
    assert b"on-a-tty" in output and b"/dev/pts/0" in output
    os.close(master)
    conn.close()
    server.close()
    refused = oci("create", "--bundle", str(bundle.path), unique_id())
    assert refused.returncode == 2 and "console socket" in refused.stderr


def test_run_with_a_direct_terminal(oci, bundle):
    bundle.config["process"]["terminal"] = True
    bundle.args("sh", "-c", "test -t 0 && echo tty-yes; exit 4").write()
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(oci.argv("run", "--bundle", str(bundle.path), unique_id())[0],
                 oci.argv("run", "--bundle", str(bundle.path), unique_id()))
    output = b""
    while True:
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    _, status = os.waitpid(pid, 0)
    assert b"tty-yes" in output
    assert os.waitstatus_to_exitcode(status) == 4


def test_hooks_run_in_order_with_the_state(oci, bundle, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    record = 'read s; echo "{phase} $s" >> {dir}/order'
    bundle.config["mounts"].append({"destination": "/out", "type": "bind", "source": str(out),
                                    "options": ["rbind"]})
    bundle.config["hooks"] = {
        phase: [{"path": "/bin/sh", "args": ["sh", "-c", record.format(phase=phase, dir=where)]}]
        for phase, where in (("prestart", out), ("createRuntime", out), ("createContainer", out),
                             ("startContainer", "/out"), ("poststart", out), ("poststop", out))}
    bundle.args("sh", "-c", "echo process >> /out/order").write()
    cid = unique_id()
    result = oci("run", "--bundle", str(bundle.path), cid)
    assert result.returncode == 0, result.stderr
    lines = (out / "order").read_text().splitlines()
    phases = [line.split(" ", 1)[0] for line in lines]
    assert phases == ["prestart", "createRuntime", "createContainer", "startContainer", "process", "poststart",
                      "poststop"] or phases == ["prestart", "createRuntime", "createContainer", "startContainer",
                                                "poststart", "process", "poststop"]
    states = {line.split(" ", 1)[0]: json.loads(line.split(" ", 1)[1]) for line in lines if line != "process"}
    assert states["createRuntime"]["status"] == "created" and states["createRuntime"]["id"] == cid
    assert states["poststart"]["status"] == "running"
    assert states["poststop"]["status"] == "stopped"


def test_start_container_hook_with_a_remembered_config(oci, bundle, tmp_path):
    """The second run finds the config validated already (no json imported on the way): the hooks the
    init runs after pivot_root still get the state, their JSON encoder imported before the fork."""
    out = tmp_path / "out"
    out.mkdir()
    bundle.config["mounts"].append({"destination": "/out", "type": "bind", "source": str(out),
                                    "options": ["rbind"]})
    record = {"path": "/bin/sh", "args": ["sh", "-c", "cat >> /out/state; echo >> /out/state"]}
    bundle.config["hooks"] = {"startContainer": [record]}
    bundle.args("true").write()
    for _ in range(2):
        result = oci("run", "--bundle", str(bundle.path), unique_id())
        assert result.returncode == 0, result.stderr
    states = [json.loads(line) for line in (out / "state").read_text().splitlines()]
    assert len(states) == 2 and all(state["status"] == "created" for state in states)


def test_run_imports_what_it_needs_only(oci, bundle):
    """With the config remembered, `run` imports none of the enum-building modules (signal, socket),
    json/re, resource, jsonschema or seccomp: runtimes start often."""
    bundle.args("true").write()
    assert oci("run", "--bundle", str(bundle.path), unique_id()).returncode == 0
    argv = oci.argv("run", "--bundle", str(bundle.path), unique_id())
    result = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "oci.runtime.lifecycle" in imported
    assert not imported & {"json", "re", "enum", "signal", "socket", "resource", "jsonschema", "seccomp"}


def test_failing_create_runtime_hook_stops_the_container(oci, bundle, tmp_path):
    marker = tmp_path / "poststop"
    bundle.config["hooks"] = {"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 9"]}],
                              "poststop": [{"path": "/bin/sh", "args": ["sh", "-c", f"touch {marker}"]}]}
    bundle.args("true").write()
    result = oci("create", "--bundle", str(bundle.path), unique_id())
    assert result.returncode != 0 and "createRuntime hook" in result.stderr
    assert marker.exists()
    assert oci("list", "-q").stdout == ""


def test_cgroup_v1_memory_and_pids_limits(oci, bundle):
    if not os.path.isdir("/sys/fs/cgroup/memory"):
        pytest.skip("cgroup v1 memory hierarchy not mounted (tested in cg2vm for v2)")
    cid = unique_id()
    path = f"/ocikit-test/{cid}"
    bundle.config["linux"]["cgroupsPath"] = path
    bundle.config["linux"]["resources"]["memory"] = {"limit": 64 * 1024 * 1024}
    bundle.config["linux"]["resources"]["pids"] = {"limit": 20}
    bundle.args("sleep", "30").write()
    assert oci("run", "-d", "--bundle", str(bundle.path), cid).returncode == 0
    pid = oci.state(cid)["pid"]
    assert Path(f"/sys/fs/cgroup/memory{path}/memory.limit_in_bytes").read_text().strip() == str(64 << 20)
    assert Path(f"/sys/fs/cgroup/pids{path}/pids.max").read_text().strip() == "20"
    assert str(pid) in Path(f"/sys/fs/cgroup/pids{path}/cgroup.procs").read_text().split()
    assert oci("kill", "--all", cid, "9").returncode == 0
    assert oci("delete", "--force", cid).returncode == 0
    assert not os.path.exists(f"/sys/fs/cgroup/memory{path}")
    from oci.linux.cgroups.base import mounted_hierarchies

    for _, mountpoint, _ in mounted_hierarchies():
        try:
            os.rmdir(f"{mountpoint}/ocikit-test")
        except OSError:
            pass  # another test's container still there, or never created


def test_user_namespace_maps_root(oci, rootfs_template):
    parent = Path(tempfile.mkdtemp(prefix="ocirun-userns-"))
    parent.chmod(0o711)  # the container's root is an unprivileged uid on the host
    bundle = Bundle(parent / "bundle", rootfs_template)
    bundle.config["linux"]["namespaces"].append({"type": "user"})
    bundle.config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 300000, "size": 65536}]
    bundle.config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 300000, "size": 65536}]
    bundle.config["linux"].pop("resources")
    bundle.args("sh", "-c", "id -u; cat /proc/self/uid_map").write()
    try:
        result = oci("run", "--bundle", str(bundle.path), unique_id())
    finally:
        shutil.rmtree(parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "0", "300000", "65536"]


def test_seccomp_errno_and_kill(oci, bundle):
    bundle.config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                     {"names": ["chroot"], "action": "SCMP_ACT_KILL_PROCESS"}]}
    script = "mkdir /tmp/x 2>&1; grep Seccomp: /proc/self/status; busybox chroot / true; echo $?"
    bundle.args("sh", "-c", script).write()
    result = oci("run", "--bundle", str(bundle.path), unique_id())
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "Operation not permitted" in lines[0] and lines[1].split() == ["Seccomp:", "2"] and lines[2] == "159"


def test_no_pivot(oci, bundle):
    bundle.args("sh", "-c", "ls /").write()
    result = oci("run", "--no-pivot", "--bundle", str(bundle.path), unique_id())
    assert result.returncode == 0, result.stderr
    assert "busybox" not in result.stdout and "bin" in result.stdout.split()


def test_state_kill_delete_import_neither_jsonschema_nor_seccomp(oci, bundle):
    cid = unique_id()
    bundle.args("sleep", "30").write()
    assert oci("run", "-d", "--bundle", str(bundle.path), cid).returncode == 0
    for args in (["state", cid], ["kill", cid, "KILL"], ["delete", "-f", cid]):
        argv = oci.argv(*args)
        result = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
        assert "oci.runtime.state" in imported
        assert not imported & {"jsonschema", "seccomp", "oci.linux.seccomp", "oci.schema", "oci.linux.mounts"}


def test_exec_joins_the_running_container(oci, bundle, tmp_path):
    cid = unique_id()
    bundle.args("sleep", "30").write()
    assert oci("run", "-d", "--bundle", str(bundle.path), cid).returncode == 0
    init = oci.state(cid)["pid"]
    result = oci("exec", "-e", "EXTRA=1", "--cwd", "/tmp", cid, "sh", "-c",
                 "hostname; pwd; echo $EXTRA; readlink /proc/1/exe; ls /proc/self/fd; exit 6")
    assert result.returncode == 6, result.stderr
    assert result.stdout.split() == ["ocirun-test", "/tmp", "1", "/bin/busybox", "0", "1", "2", "3"]
    assert oci("exec", "-u", "1000:1001", cid, "id").stdout.strip() == "uid=1000 gid=1001"
    process = dict(bundle.config["process"], args=["cat", "/proc/self/cgroup"])
    (tmp_path / "process.json").write_text(json.dumps(process))
    pid_file = tmp_path / "exec.pid"
    result = oci("exec", "--process", str(tmp_path / "process.json"), "--pid-file", str(pid_file), cid)
    assert result.returncode == 0, result.stderr
    assert int(pid_file.read_text()) > 0
    # In the container's cgroup namespace its own cgroup is "/": anything else would show as /.. paths.
    assert {line.split(":")[2] for line in result.stdout.splitlines()} == {"/"}
    assert init > 0
    missing = oci("exec", cid, "no-such-program")
    assert missing.returncode != 0 and "executable file not found" in missing.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(dict(process, selinuxLabel="system_u:x")))
    refused = oci("exec", "--process", str(bad), cid)
    assert refused.returncode == 8 and "/selinuxLabel" in refused.stderr
    assert oci("delete", "-f", cid).returncode == 0
    assert oci("exec", cid, "true").returncode == 3


def test_recursive_read_only_bind(oci, bundle, tmp_path):
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(source / "sub")], check=True)
    try:
        bundle.config["mounts"].append({"destination": "/data", "type": "bind", "source": str(source),
                                        "options": ["rbind", "rro", "rnosuid"]})
        bundle.args("sh", "-c", "touch /data/sub/x 2>/dev/null && echo WRITABLE; "
                                "grep ' /data/sub ' /proc/self/mountinfo | cut -d' ' -f6").write()
        result = oci("run", "--bundle", str(bundle.path), unique_id())
        assert result.returncode == 0, result.stderr
        assert "WRITABLE" not in result.stdout
        assert set(result.stdout.split()[0].split(",")) >= {"ro", "nosuid"}
    finally:
        subprocess.run(["umount", "-l", str(source / "sub")])
