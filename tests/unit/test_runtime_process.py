"""The container's init from rootfs to exec (oci.runtime.process) and exec's joiner (oci.runtime.execute), run in
this process against the fake kernel: what is asked of the kernel and in which order (config.md#linux-process,
config.md#posix-process: rlimits, user, capabilities, no_new_privs, seccomp last), without root.

The init's last steps exit or exec; here os._exit and os.execve raise instead, and what the init changes in
this process (signal dispositions and mask, umask, affinity, working directory) is put back after each test.
"""

from __future__ import annotations

import _signal
import _socket
import errno
import os

import pytest

from oci.errors import InvalidInput
from oci.linux import kernel, namespaces
from oci.linux.capabilities import NAMES
from oci.runtime import execute, process
from oci.runtime.channel import Channel, InitError

CAP = {name: number for number, name in enumerate(NAMES)}


class Exited(BaseException):
    """os._exit(code), called by the init."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class Executed(BaseException):
    """os.execve(path, args, env), reached by the init."""


def bits(*names: str) -> int:
    return sum(1 << CAP[name] for name in names)


@pytest.fixture
def init_process(monkeypatch, tmp_path, fake_kernel):
    """os._exit and os.execve raise; what the init changes in this process is restored afterwards."""
    execs: list[tuple] = []

    def execve(path, args, env):
        execs.append((path, list(args), dict(env)))
        raise Executed(path)

    def exit_(code):
        raise Exited(code)

    monkeypatch.setattr(os, "_exit", exit_)
    monkeypatch.setattr(os, "execve", execve)
    monkeypatch.chdir(tmp_path)
    handlers = {signum: _signal.getsignal(signum) for signum in range(1, _signal.NSIG)
                if signum not in (_signal.SIGKILL, _signal.SIGSTOP)}
    mask = _signal.pthread_sigmask(_signal.SIG_BLOCK, [])
    umask = os.umask(0o022)
    os.umask(umask)
    affinity = os.sched_getaffinity(0)
    yield execs
    for signum, handler in handlers.items():
        try:
            _signal.signal(signum, handler if handler is not None else _signal.SIG_DFL)
        except (OSError, ValueError, TypeError):
            pass
    _signal.pthread_sigmask(_signal.SIG_SETMASK, mask)
    os.umask(umask)
    os.sched_setaffinity(0, affinity)


def config(bundle, **process_fields) -> dict:
    (bundle / "rootfs").mkdir(exist_ok=True)
    proc = {"args": ["/bin/sh", "-c", "true"], "cwd": "/", "env": ["PATH=/usr/bin:/bin", "TERM=xterm"],
            "user": {"uid": 0, "gid": 0}, "noNewPrivileges": True,
            "capabilities": {kind: ["CAP_KILL", "CAP_NET_BIND_SERVICE"]
                             for kind in ("bounding", "effective", "permitted")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024}], **process_fields}
    return {"ociVersion": "1.3.0", "process": proc, "root": {"path": "rootfs", "readonly": True},
            "hostname": "box", "domainname": "example.org", "mounts": [],
            "linux": {"namespaces": [{"type": t} for t in ("pid", "network", "mount", "uts", "cgroup")]}}


def start_listener(tmp_path):
    """exec.sock with `start` already connected (the init accepts it once it is ready)."""
    listener = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    listener.bind(str(tmp_path / "exec.sock"))
    listener.listen(1)
    start = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    start.connect(str(tmp_path / "exec.sock"))
    return listener, start


def run_init(tmp_path, doc, seccomp_filter=None):
    """stage_b of `doc` up to its exec: (messages the runtime got, what `start` read, the exit code)."""
    listener, start = start_listener(tmp_path)
    ours, theirs = Channel.pair()
    ours.send("state", state={"ociVersion": "1.3.0", "id": "c1", "status": "created", "pid": 1,
                              "bundle": str(tmp_path)})
    opts = process.InitOptions(doc, str(tmp_path), listener, no_pivot=False, preserve_fds=0, console_fd=None,
                               cgroup_binds=[("", "/sys/fs/cgroup/unified/c1")], seccomp_filter=seccomp_filter)
    ns = namespaces.Namespaces(doc["linux"]["namespaces"])
    try:
        with pytest.raises(Exited) as exited:
            process.stage_b(theirs, opts, ns)
        messages = []
        ours.sock.setblocking(False)
        try:
            while True:
                messages.append(ours.recv())
        except BlockingIOError:
            pass  # the init's end is still open: it failed before closing it
        except InitError as err:  # an error message, or the end closed (after "ready")
            if "exited before finishing" not in err.message:
                messages.append({"kind": "error", "message": err.message})
        start.setblocking(False)
        try:
            said = start.recv(65536)
        except BlockingIOError:
            said = b""
        return messages, said, exited.value.code
    finally:
        ours.close()
        start.close()


def test_the_init_builds_the_container_then_sets_up_its_process_and_execs(tmp_path, fake_kernel, init_process):
    doc = config(tmp_path)
    messages, said, code = run_init(tmp_path, doc, seccomp_filter="FILTER")
    assert [m["kind"] for m in messages] == ["hooks", "ready"]
    assert init_process == [("/bin/sh", ["/bin/sh", "-c", "true"],
                             {"PATH": "/usr/bin:/bin", "TERM": "xterm", "HOME": "/"})]
    assert (said, code) == (b"/bin/sh", 1)  # `start` reads why exec failed: here the stand-in's exception
    names = fake_kernel.names()
    # lo up before the mounts, the cgroup namespace after the runtime's "state", then the root changes
    assert names.index("ioctl") < names.index("mount") < names.index("unshare") < names.index("pivot_root")
    assert fake_kernel.called("unshare") == [(kernel.CLONE_NEWCGROUP,)]
    assert (fake_kernel.hostname, fake_kernel.domainname) == ("box", "example.org")
    assert fake_kernel.called("setrlimit") == [(kernel.RLIMITS["RLIMIT_NOFILE"], 1024, 1024)]
    # the process's own setup comes last, seccomp at the very end with no_new_privs
    tail = [name for name in names[names.index("close_range"):] if name != "prctl"]
    assert tail == ["close_range", "close_range", "setgroups", "setresgid", "setresuid", "capset", "load_seccomp"]
    assert fake_kernel.seccomp == ["FILTER"] and fake_kernel.no_new_privs
    assert fake_kernel.bounding == fake_kernel.permitted == fake_kernel.effective == bits("CAP_KILL",
                                                                                          "CAP_NET_BIND_SERVICE")


def test_a_capability_oci_run_lacks_is_left_out_with_a_warning(tmp_path, fake_kernel, init_process):
    fake_kernel.bounding &= ~bits("CAP_SYS_BOOT")
    doc = config(tmp_path, capabilities={"bounding": ["CAP_KILL", "CAP_SYS_BOOT"], "permitted": ["CAP_KILL"]})
    messages, _, _ = run_init(tmp_path, doc)
    assert messages[0]["warnings"] == ["/process/capabilities: CAP_SYS_BOOT: cannot be granted (oci-run does not "
                                       "hold it here), left out"]
    assert fake_kernel.bounding == bits("CAP_KILL")


def test_a_non_root_user_keeps_its_capabilities_through_the_uid_change(tmp_path, fake_kernel, init_process):
    """keep-caps around setresuid, then capset and the ambient set: the kernel's rules, which the fake applies."""
    caps = {"bounding": ["CAP_KILL", "CAP_NET_BIND_SERVICE"], "effective": ["CAP_NET_BIND_SERVICE"],
            "permitted": ["CAP_NET_BIND_SERVICE"], "inheritable": ["CAP_NET_BIND_SERVICE"],
            "ambient": ["CAP_NET_BIND_SERVICE"]}
    doc = config(tmp_path, user={"uid": 1000, "gid": 1000, "additionalGids": [5, 6], "umask": 0o077},
                 capabilities=caps, noNewPrivileges=False)
    _, _, code = run_init(tmp_path, doc, seccomp_filter="FILTER")
    assert code == 1 and init_process  # reached exec
    assert (fake_kernel.uid, fake_kernel.gid, fake_kernel.groups) == (1000, 1000, [5, 6])
    nbs = bits("CAP_NET_BIND_SERVICE")
    assert (fake_kernel.effective, fake_kernel.permitted, fake_kernel.inheritable, fake_kernel.ambient) == (nbs,) * 4
    assert not fake_kernel.keep_caps and not fake_kernel.no_new_privs
    names = fake_kernel.names()
    # without no_new_privs the filter is loaded while CAP_SYS_ADMIN is still held: before the bounding drop
    assert names.index("load_seccomp") < names.index("setresuid")
    assert os.umask(0o022) == 0o077


def test_a_failing_step_is_reported_on_the_channel(tmp_path, fake_kernel, init_process):
    fake_kernel.fail("sethostname", errno.EPERM)
    messages, _, code = run_init(tmp_path, config(tmp_path))
    assert code == 1 and not init_process
    assert messages[-1] == {"kind": "error", "message": "sethostname: Operation not permitted"}


def test_an_unknown_executable_fails_the_init_as_runc_words_it(tmp_path, fake_kernel, init_process):
    messages, _, _ = run_init(tmp_path, config(tmp_path, args=["no-such-program"]))
    assert messages[-1]["message"] == 'exec: "no-such-program": executable file not found in $PATH'


def test_stage_a_unshares_maps_the_user_namespace_and_reports_the_inits_pid(tmp_path, fake_kernel, init_process,
                                                                         monkeypatch):
    doc = config(tmp_path)
    doc["linux"]["namespaces"] = [{"type": "user"}, {"type": "pid"}, {"type": "mount"}, {"type": "cgroup"}]
    monkeypatch.setattr(process.os, "fork", lambda: 4243)
    ours, theirs = Channel.pair()
    opts = process.InitOptions(doc, str(tmp_path), None, no_pivot=False, preserve_fds=0, console_fd=None,
                               cgroup_binds=[])
    try:
        ours.send("go")
        ours.send("mapped")
        with pytest.raises(Exited) as exited:
            process.stage_a(theirs, opts)
        assert exited.value.code == 0
        assert ours.recv("userns") and ours.recv("pid")["pid"] == 4243
    finally:
        ours.close()
        theirs.close()
    assert fake_kernel.calls[:2] == [("prctl", (kernel.PR_SET_DUMPABLE, 0, 0, 0, 0)),
                                     ("unshare", (kernel.CLONE_NEWUSER,))]
    # root in the new user namespace, then the others (cgroup later, by the init)
    assert fake_kernel.names()[2:] == ["setresgid", "setresuid", "unshare"]
    assert fake_kernel.calls[-1] == ("unshare", (kernel.CLONE_NEWPID | kernel.CLONE_NEWNS,))


def test_finalize_sets_scheduling_io_priority_and_personality(fake_kernel, init_process):
    proc = {"args": ["x"], "scheduler": {"policy": "SCHED_BATCH", "nice": 5, "flags": ["SCHED_FLAG_RESET_ON_FORK"]},
            "ioPriority": {"class": "IOPRIO_CLASS_IDLE", "priority": 7},
            "rlimits": [{"type": "RLIMIT_CORE", "soft": 0, "hard": -1}], "execCPUAffinity": {"final": "0"}}
    if 0 not in os.sched_getaffinity(0):
        del proc["execCPUAffinity"]
    process.finalize(proc, {"domain": "LINUX32"}, None, 0, keep=10000)
    assert fake_kernel.called("personality") == [(process.PERSONALITIES["LINUX32"],)]
    assert fake_kernel.called("ioprio_set") == [(kernel.IOPRIO_WHO_PROCESS, 0, (3 << 13) | 7)]
    assert fake_kernel.called("sched_setattr") == [(process.SCHED_POLICIES["SCHED_BATCH"], 1, 5, 0, 0, 0, 0)]
    assert fake_kernel.called("setrlimit") == [(kernel.RLIMITS["RLIMIT_CORE"], 0, kernel.U64)]
    assert fake_kernel.called("close_range") == [(3, 9999, 0), (10001, 0xFFFFFFFF, 0)]  # all but `keep`


def test_finalize_refuses_an_unknown_personality(fake_kernel, init_process):
    with pytest.raises(process.InitFailure, match="/linux/personality/domain: unknown domain"):
        process.finalize({"args": ["x"]}, {"domain": "LINUX64"}, None, 0, keep=10000)


def test_a_refused_rlimit_fails_with_its_name(fake_kernel):
    fake_kernel.fail("setrlimit", errno.EPERM)
    with pytest.raises(process.InitFailure, match="setrlimit RLIMIT_NPROC: Operation not permitted"):
        process.set_rlimits({"rlimits": [{"type": "RLIMIT_NPROC", "soft": 10, "hard": 10}]})
    with pytest.raises(process.InitFailure, match="unknown rlimit RLIMIT_BOGUS"):
        process.set_rlimits({"rlimits": [{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]})


def test_inherited_fds_are_closed_one_by_one_where_close_range_is_refused(fake_kernel):
    fake_kernel.fail("close_range", errno.ENOSYS)
    high = os.dup2(os.open("/dev/null", os.O_RDONLY), 900)
    try:
        process.close_inherited(900, keep=-1)
        with pytest.raises(OSError):
            os.fstat(high)
    finally:
        try:
            os.close(high)
        except OSError:
            pass
    fake_kernel.calls.clear()
    process.close_inherited(5, keep=5)
    assert fake_kernel.called("close_range") == [(6, 0xFFFFFFFF, 0)]


def test_small_helpers(tmp_path):
    assert process.cpu_set("0-2,5") == {0, 1, 2, 5}
    assert process.environment(["A=1", "B"]) == {"A": "1", "B": "", "HOME": "/"}
    assert process.environment(["HOME=/root"]) == {"HOME": "/root"}
    assert process.describe_error(FileNotFoundError(errno.ENOENT, "No such file or directory", "/x")) == \
        "No such file or directory: /x"
    assert process.describe_error(InvalidInput("bad  value")) == "bad  value"
    with pytest.raises(process.InitFailure, match='exec: "/no-such-dir/x": stat /no-such-dir/x: no such file'):
        process.find_executable("/no-such-dir/x", [])
    (tmp_path / "data").write_text("not a program\n")
    with pytest.raises(process.InitFailure, match='exec: ".*/data": permission denied'):
        process.find_executable(str(tmp_path / "data"), [])
    assert process.find_executable("sh", ["PATH=/no-such-dir-seam/x:/bin"]) == "/bin/sh"


def test_exec_joins_the_containers_namespaces_user_first_and_forks_the_process(tmp_path, fake_kernel,
                                                                             init_process, monkeypatch):
    """`exec`'s joiner (oci.runtime.execute._join): the namespaces in order, then the child's pid reported."""
    monkeypatch.setattr(execute.os, "fork", lambda: 4244)
    fds = {kind: os.open(f"/proc/self/ns/{namespaces.PROC_NAMES[kind]}", os.O_RDONLY)
           for kind in ("user", "network", "mount")}
    ours, theirs = Channel.pair()
    try:
        with pytest.raises(Exited) as exited:
            execute._join(theirs, fds, {"args": ["/bin/true"], "capabilities": {"bounding": ["CAP_KILL"]}},
                          {"linux": {}}, None, None, 0)
        assert exited.value.code == 0
        assert ours.recv("pid") == {"kind": "pid", "pid": 4244, "warnings": []}
    finally:
        ours.close()
        theirs.close()
    assert [nstype for _, nstype in fake_kernel.called("setns")] == [kernel.CLONE_NEWUSER, kernel.CLONE_NEWNET,
                                                                    kernel.CLONE_NEWNS]


def test_an_exec_process_file_is_checked_as_runc_checks_it(tmp_path):
    path = tmp_path / "process.json"
    path.write_text('{"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}, "futureField": 1}')
    notes: list[str] = []
    assert execute.process_from_file(str(path), notes)["args"] == ["sh"]
    assert any("futureField" in note for note in notes)
    path.write_text('{"args": [], "cwd": "relative", "user": {"uid": 0, "gid": 0}}')
    with pytest.raises(InvalidInput, match="process.json"):
        execute.process_from_file(str(path))
