"""The runtime's side of create, start, kill and delete (runtime.md#lifecycle) without root: the fake kernel,
a cgroup manager that records, a fork that makes no process, and the init's messages played on its end of
the sync channel. What the init itself does is test_runtime_process.py's."""

from __future__ import annotations

import _socket
import json
import os

import pytest

from oci.errors import Conflict, InvalidInput, NotFound, UsageError
from oci.linux import cgroups, kernel
from oci.linux.cgroups import prime
from oci.linux.cgroups.base import CgroupError
from oci.runtime import lifecycle, process
from oci.runtime.channel import Channel, InitError
from oci.runtime.defaults import default_config
from oci.runtime.state import StateStore

INIT_PID = 4245


class RecordingCgroup:
    """A cgroup manager that records what the runtime asks of it."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.members: list[int] = []

    def create(self) -> None:
        self.calls.append(("create",))

    def apply(self, resources: dict, notes: list | None = None) -> None:
        self.calls.append(("apply", resources))

    def mount_binds(self) -> list[tuple[str, str]]:
        return [("", "/sys/fs/cgroup/unified/test")]

    def join(self, pid: int, beside: int = 0) -> None:
        self.calls.append(("join", pid))

    def pids(self) -> list[int]:
        return list(self.members)

    def kill_all(self) -> bool:
        return False

    def is_frozen(self) -> bool:
        return False

    def freeze(self) -> None:
        self.calls.append(("freeze",))

    def thaw(self) -> None:
        self.calls.append(("thaw",))

    def destroy(self) -> None:
        self.calls.append(("destroy",))


class PlayedInit:
    """The init's end of the sync channel: its messages are queued before the runtime reads them."""

    def __init__(self, messages: list[dict]) -> None:
        self.messages = messages
        self.ours: Channel | None = None
        self.theirs: Channel | None = None
        self.received: list[dict] = []

    def pair(self) -> tuple[Channel, Channel]:
        ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
        self.ours, self.theirs = Channel(ours), Channel(theirs)
        # the init's end stays open when the runtime closes its copy after the fork
        self.keep = Channel(_socket.socket(fileno=os.dup(theirs.fileno())))
        return self.ours, self.theirs

    def fork(self) -> int:
        for message in self.messages:
            kind = message["kind"]
            self.keep.send(kind, **{k: v for k, v in message.items() if k != "kind"})
        return INIT_PID

    def close(self) -> None:
        self.keep.sock.setblocking(False)
        try:
            while True:
                self.received.append(self.keep.recv())
        except (BlockingIOError, InitError):
            pass
        self.keep.close()


@pytest.fixture
def runtime(tmp_path, monkeypatch, fake_kernel):
    cgroup = RecordingCgroup()
    monkeypatch.setattr(cgroups, "manager", lambda path: cgroup)
    monkeypatch.setattr(prime, "start", lambda: None)
    monkeypatch.setattr(prime, "stop", lambda: None)
    monkeypatch.setattr(lifecycle, "process_start_time", lambda pid: None)
    bundle = tmp_path / "bundle"
    (bundle / "rootfs").mkdir(parents=True)
    doc = default_config()
    doc["process"]["terminal"] = False
    (bundle / "config.json").write_text(json.dumps(doc))
    return StateStore(str(tmp_path / "state")), str(bundle), cgroup


def played(monkeypatch, messages: list[dict]) -> PlayedInit:
    init = PlayedInit(messages)
    monkeypatch.setattr(Channel, "pair", classmethod(lambda cls: init.pair()))
    monkeypatch.setattr(process.os, "fork", init.fork)
    return init


def test_create_forks_the_init_moves_it_into_its_cgroup_and_records_the_container(runtime, monkeypatch,
                                                                                  fake_kernel, tmp_path):
    store, bundle, cgroup = runtime
    init = played(monkeypatch, [{"kind": "hooks", "warnings": ["/process/capabilities: CAP_X: left out"]},
                                {"kind": "ready"}])
    notes: list[str] = []
    opts = lifecycle.CreateOptions(pid_file=str(tmp_path / "pid"), subreaper=True, notes=notes)
    container = lifecycle.create(store, "c1", bundle, opts)
    init.close()
    assert container.pid == INIT_PID and (tmp_path / "pid").read_text() == str(INIT_PID)
    assert [call[0] for call in cgroup.calls] == ["create", "apply", "join"] and ("join", INIT_PID) in cgroup.calls
    assert [m["kind"] for m in init.received] == ["state"]
    assert init.received[0]["state"]["status"] == "created" and init.received[0]["state"]["pid"] == INIT_PID
    assert notes == [f"{bundle}/config.json: /process/capabilities: CAP_X: left out"]
    # the runtime's own kernel calls: run's subreaper, then a new pid namespace for the init's fork and back
    assert fake_kernel.calls[0] == ("prctl", (kernel.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0))
    assert [name for name, _ in fake_kernel.calls[1:]] == ["unshare", "setns"]
    assert store.load("c1").pid == INIT_PID


def test_an_init_failure_undoes_create(runtime, monkeypatch):
    store, bundle, cgroup = runtime
    init = played(monkeypatch, [{"kind": "error", "message": "mount /proc: Operation not permitted"}])
    with pytest.raises(InitError, match="mount /proc: Operation not permitted"):
        lifecycle.create(store, "c2", bundle, lifecycle.CreateOptions())
    init.close()
    assert cgroup.calls[-1] == ("destroy",)
    with pytest.raises(NotFound):
        store.load("c2")


def test_create_refuses_what_it_cannot_do_before_anything_is_made(runtime, tmp_path):
    store, bundle, cgroup = runtime
    with pytest.raises(NotFound, match="does not exist"):
        lifecycle.create(store, "c3", str(tmp_path / "nowhere"), lifecycle.CreateOptions())
    doc = json.loads((tmp_path / "bundle" / "config.json").read_text())
    doc["process"]["terminal"] = True
    (tmp_path / "bundle" / "config.json").write_text(json.dumps(doc))
    with pytest.raises(UsageError, match="cannot allocate tty"):
        lifecycle.create(store, "c3", bundle, lifecycle.CreateOptions())
    assert cgroup.calls == []


def test_start_kill_and_delete_of_a_container_whose_init_is_gone(runtime, monkeypatch):
    store, bundle, cgroup = runtime
    init = played(monkeypatch, [{"kind": "hooks", "warnings": []}, {"kind": "ready"}])
    lifecycle.create(store, "c4", bundle, lifecycle.CreateOptions())
    init.close()
    with pytest.raises(Conflict, match="cannot start a container that has stopped"):
        lifecycle.start(store, "c4")
    with pytest.raises(Conflict, match="container not running"):
        lifecycle.kill(store, "c4", 15)
    with pytest.raises(Conflict, match="container not running"):
        lifecycle.kill(store, "c4", 15, all_processes=True)
    assert lifecycle.delete(store, "c4") is None
    assert cgroup.calls[-1] == ("destroy",)
    with pytest.raises(NotFound):
        store.load("c4")


@pytest.mark.parametrize("text, number", [("9", 9), ("KILL", 9), ("sigterm", 15), ("RTMIN+2", 36), ("SIGRTMAX", 64)])
def test_signals_as_runc_reads_them(text, number):
    assert lifecycle.parse_signal(text) == number


@pytest.mark.parametrize("text", ["0", "65", "NOPE", "RTMIN+x"])
def test_unknown_signals_are_refused(text):
    with pytest.raises(InvalidInput, match="invalid signal"):
        lifecycle.parse_signal(text)


class FreezableCgroup(RecordingCgroup):
    """A cgroup with a freezer (v1) whose member list changes once it is frozen (a fork raced the listing),
    paused or not, with or without the kernel's cgroup.kill."""

    def __init__(self, paused: bool = False, has_kill: bool = False, freezer: bool = True) -> None:
        super().__init__()
        self.paused, self.has_kill, self.freezer = paused, has_kill, freezer
        self.members = [101]

    def is_frozen(self) -> bool:
        return self.paused

    def freeze(self) -> None:
        if not self.freezer:
            raise CgroupError("cgroup: the freezer controller is not mounted")
        self.calls.append(("freeze",))
        self.members = [101, 102]  # forked before the freeze took hold: listed now, as frozen

    def kill_all(self) -> bool:
        if self.has_kill:
            self.calls.append(("cgroup.kill",))
        return self.has_kill


@pytest.fixture
def sent(monkeypatch):
    signals: list[tuple[int, int]] = []

    def fake_kill(pid: int, signum: int) -> None:
        signals.append((pid, signum))

    monkeypatch.setattr(lifecycle.os, "kill", fake_kill)
    return signals


def test_every_process_is_signalled_inside_a_freeze_so_no_fork_escapes_the_list(sent):
    cgroup = FreezableCgroup()
    assert lifecycle.signal_all(cgroup, 15) == {101, 102}
    assert cgroup.calls == [("freeze",), ("thaw",)]
    assert sorted(sent) == [(101, 15), (102, 15)]


def test_a_paused_container_stays_paused_for_a_signal_but_is_thawed_for_sigkill(sent):
    paused = FreezableCgroup(paused=True)
    lifecycle.signal_all(paused, 15)
    assert paused.calls == [("freeze",)]  # the signal waits for resume, as Docker's kill of a paused container
    paused = FreezableCgroup(paused=True)
    lifecycle.signal_all(paused, 9)
    assert paused.calls == [("freeze",), ("thaw",)]  # a frozen v1 task dies only once thawed


def test_sigkill_goes_through_cgroup_kill_where_the_kernel_has_it_and_the_init_by_pid(sent):
    cgroup = FreezableCgroup(has_kill=True)
    assert lifecycle.signal_all(cgroup, 9, also=4245) == {4245}
    assert cgroup.calls == [("cgroup.kill",)] and sent == [(4245, 9)]


def test_without_a_freezer_the_processes_listed_are_signalled(sent):
    cgroup = FreezableCgroup(freezer=False)
    assert lifecycle.signal_all(cgroup, 15) == {101}
    assert cgroup.calls == [] and sent == [(101, 15)]
