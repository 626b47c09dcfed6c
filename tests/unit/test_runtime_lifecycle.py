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
