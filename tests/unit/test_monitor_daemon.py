"""The monitor end to end, without root: a fake runtime (monitor_fake_runtime.py) forks plain processes,
and the monitor, their subreaper, logs, reaps, restarts, stops and adopts them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from oci.errors import Conflict, NotFound, OciError
from oci.monitor import client, crilog
from oci.monitor.follow import RotatedFile
from oci.monitor.paths import Root

FAKE = Path(__file__).with_name("monitor_fake_runtime.py")


def wait_for(predicate, timeout=20.0, what="the condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


class World:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.root = Root(str(base / "root"))
        self.runtime = base / "runtime"
        self.runtime.write_text(f"#!/bin/sh\nexec {sys.executable} {FAKE} \"$@\"\n")
        self.runtime.chmod(0o755)
        self.monitors: set[int] = set()

    def config(self, *args: str, tty: bool = False, restart: str = "no", stop_signal: str = "SIGTERM",
               stop_timeout: int = 10, max_size: int = 0, max_files: int = 1, cid: str = "c") -> dict:
        bundle = self.base / f"bundle-{cid}"
        bundle.mkdir(exist_ok=True)
        (bundle / "config.json").write_text(json.dumps({"process": {"args": list(args), "terminal": tty}}))
        name, _, count = restart.partition(":")
        return {"bundle": str(bundle), "runtime": {"path": str(self.runtime), "root": str(self.base / "rt")},
                "command": list(args), "tty": tty, "interactive": False,
                "restartPolicy": {"name": name, "maximumRetryCount": int(count or 0)}, "stopSignal": stop_signal,
                "stopTimeout": stop_timeout,
                "log": {"path": self.root.default_log(cid), "maxSize": max_size, "maxFiles": max_files}}

    def run(self, cid: str, *args: str, **options) -> dict:
        answer = client.run(self.root, cid, self.config(*args, cid=cid, **options))
        pid = client.monitor_pid(self.root)
        if pid:
            self.monitors.add(pid)
        return answer

    def state(self, cid: str) -> dict:
        return client.inspect(self.root, cid)["state"]

    def lines(self, cid: str) -> list[bytes]:
        return [r.content for r in crilog.records(RotatedFile(self.root.default_log(cid)).history())]

    def actions(self, cid: str) -> list[str]:
        path = Path(self.root.events)
        return [e["Action"] for e in map(json.loads, path.read_text().splitlines()) if e["id"] == cid]

    def cleanup(self) -> None:
        for cid in self.root.ids():
            try:
                client.remove(self.root, cid, force=True)
            except OciError:
                pass
        pid = client.monitor_pid(self.root)
        if pid:
            self.monitors.add(pid)
        for pid in self.monitors:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            wait_for(lambda p=pid: not alive(p), 10, "the monitor to leave")


@pytest.fixture
def world(tmp_path):
    w = World(tmp_path)
    yield w
    w.cleanup()


def test_run_logs_and_exit_code(world):
    answer = world.run("c", "sh", "-c", "echo out; echo err >&2; printf part; sleep 0.1; exit 3")
    assert answer["id"] == "c" and answer["pid"] > 0
    assert client.wait(world.root, "c") == 3
    st = world.state("c")
    assert (st["status"], st["exitCode"], st["signal"], st["pid"]) == ("exited", 3, None, 0)
    assert world.lines("c") == [b"out", b"err", b"part"] or sorted(world.lines("c")) == [b"err", b"out", b"part"]
    assert world.actions("c") == ["create", "start", "die"]
    row = client.containers(world.root, all_states=True)[0]
    assert row["statusText"].startswith("Exited (3)") and row["monitored"] is False


def test_on_failure_restarts_with_backoff_then_gives_up(world):
    world.run("c", "sh", "-c", "echo go; exit 1", restart="on-failure:2")
    wait_for(lambda: world.state("c")["restartCount"] == 2 and world.state("c")["status"] == "exited", 20,
             "two restarts")
    time.sleep(0.5)
    assert world.state("c")["restartCount"] == 2
    assert world.actions("c").count("restart") == 2
    assert world.lines("c") == [b"go"] * 3


def test_stop_grace_then_kill_and_no_restart(world):
    world.run("c", "sh", "-c", "trap '' TERM; while :; do sleep 0.05; done", restart="always")
    began = time.monotonic()
    assert client.stop(world.root, "c", timeout=1) == 137
    assert time.monotonic() - began >= 1
    st = world.state("c")
    assert (st["signal"], st["manuallyStopped"], st["status"]) == ("SIGKILL", True, "exited")
    assert world.actions("c")[-2:] == ["die", "stop"]
    time.sleep(0.4)
    assert world.state("c")["restartCount"] == 0


def test_kill_rm_and_conflicts(world):
    world.run("c", "sh", "-c", "trap 'exit 9' USR1; while :; do sleep 0.05; done")
    with pytest.raises(Conflict):
        world.run("c", "true")
    with pytest.raises(Conflict, match="running"):
        client.remove(world.root, "c")
    client.kill(world.root, "c", "USR1")
    assert client.wait(world.root, "c") == 9
    with pytest.raises(Conflict, match="not running"):
        client.kill(world.root, "c", "USR1")
    client.remove(world.root, "c")
    assert not os.path.exists(world.root.container("c"))
    with pytest.raises(NotFound):
        client.inspect(world.root, "c")


def test_a_failing_runtime_leaves_nothing(world):
    (world.base / "rt" / "c").mkdir(parents=True)  # the fake runtime then says the container exists
    with pytest.raises(OciError, match="run exited with 1: container c exists"):
        world.run("c", "true")
    assert world.root.ids() == []


def test_detached_terminal_is_logged(world):
    world.run("c", "sh", "-c", "tty >/dev/null && echo on-a-tty", tty=True)
    assert client.wait(world.root, "c") == 0
    assert b"on-a-tty\r" in world.lines("c")


def test_rotation_and_follow(world):
    world.run("c", "sh", "-c", "i=0; while [ $i -lt 200 ]; do echo line-$i; i=$((i+1)); done", max_size=500,
              max_files=3)
    client.wait(world.root, "c")
    folder = Path(world.root.container("c"))
    assert sorted(p.name for p in folder.glob("ctr.log*")) == ["ctr.log", "ctr.log.1", "ctr.log.2"]
    lines = world.lines("c")
    assert lines == [f"line-{i}".encode() for i in range(200 - len(lines), 200)]


def test_monitor_killed_then_a_new_one_adopts(world):
    world.run("c", "sh", "-c", "i=0; trap 'exit 0' TERM; while :; do echo tick-$i; i=$((i+1)); sleep 0.05; done")
    world.run("d", "sh", "-c", "sleep 0.5; exit 4", restart="on-failure:1")
    pid = world.state("c")["pid"]
    monitor = client.monitor_pid(world.root)
    os.kill(monitor, signal.SIGKILL)
    wait_for(lambda: not alive(monitor), 10, "the monitor to die")
    time.sleep(1)
    assert alive(pid)
    rows = {row["id"]: row for row in client.containers(world.root, all_states=True)}
    assert rows["c"]["statusText"].endswith("(unmonitored)") and not rows["c"]["monitored"]
    client.request(world.root, {"op": "ping"})  # a new monitor
    world.monitors.add(client.monitor_pid(world.root))
    assert world.state("c")["adopted"] and world.state("c")["pid"] == pid
    wait_for(lambda: world.state("d")["restartCount"] == 1, 10, "d restarted by the new monitor")
    ticks = wait_for(lambda: [line for line in world.lines("c")] if len(world.lines("c")) > 40 else None, 10,
                     "ticks after adoption")
    assert ticks == [f"tick-{i}".encode() for i in range(len(ticks))]
    assert client.stop(world.root, "c", timeout=5) is None, "an adopted container's exit code is unknown"
    assert "unknown" in world.state("c")["error"]


def test_one_monitor_per_root(world):
    client.start_monitor(world.root, idle_timeout=60)
    first = client.monitor_pid(world.root)
    world.monitors.add(first)
    second = subprocess.run([sys.executable, "-c", "import sys; from oci.monitor import service; "
                             "sys.exit(service.main(sys.argv[1:]))", world.root.path, "--daemonize"],
                            capture_output=True, text=True, timeout=60, cwd=str(Path(__file__).parents[2]))
    assert second.returncode == 1 and "already runs" in second.stderr
    assert client.monitor_pid(world.root) == first


def test_an_idle_monitor_leaves(world):
    client.start_monitor(world.root, idle_timeout=0.5)
    first = client.monitor_pid(world.root)
    assert first
    wait_for(lambda: not alive(first), 10, "an idle monitor to leave")
    assert not os.path.exists(world.root.socket)
    assert client.request(world.root, {"op": "ping"})["pid"] != first


def test_auto_remove_once_it_ended(world):
    config = world.config("sh", "-c", "exit 6", cid="c")
    config["autoRemove"] = True
    client.run(world.root, "c", config)
    world.monitors.add(client.monitor_pid(world.root))
    wait_for(lambda: not os.path.exists(world.root.container("c")), 10, "its removal")
    wait_for(lambda: world.actions("c")[-1:] == ["destroy"], 10, "its destroy event")
    assert world.actions("c") == ["create", "start", "die", "destroy"]


def run_options(world: World, cid: str, **changes: object) -> dict:
    """The options `oci-mon run` sends (oci.monitor.runspec), for a bundle whose config the monitor reads."""
    bundle = world.base / f"bundle-{cid}"
    bundle.mkdir(exist_ok=True)
    config = {"process": {"args": ["sh", "-c", "exit 4"], "terminal": False},
              "annotations": {"org.opencontainers.image.stopSignal": "RTMIN+3"}}
    (bundle / "config.json").write_text(json.dumps(config))
    options = {"bundle": str(bundle), "runtime": world.runtime.name, "path": str(world.runtime.parent),
               "commandDir": None, "runtimeRoot": str(world.base / "rt"), "restart": "on-failure:1", "rm": False,
               "stopSignal": None, "stopTimeout": 10, "logPath": None, "logMaxSize": "1m", "logMaxFiles": 2,
               "interactive": False, "tty": False}
    return {**options, **changes}


def test_run_from_the_commands_options(world):
    """The monitor reads the bundle and the flags: the runtime found on the caller's PATH, the stop signal from
    the image's annotation, sizes and policies parsed, the log in the container's folder."""
    answer = client.run(world.root, "c", options=run_options(world, "c"))
    assert answer["status"] == "running"
    config = client.inspect(world.root, "c")["config"]
    assert config["runtime"] == {"path": str(world.runtime), "root": str(world.base / "rt")}
    assert (config["command"], config["stopSignal"], config["tty"]) == (["sh", "-c", "exit 4"], "SIGRTMIN+3", False)
    assert config["restartPolicy"] == {"name": "on-failure", "maximumRetryCount": 1}
    assert config["log"] == {"path": world.root.default_log("c"), "maxSize": 1 << 20, "maxFiles": 2}
    assert client.wait(world.root, "c") in (4, None)


@pytest.mark.parametrize(("changes", "code", "words"), [
    ({"restart": "sometimes"}, 2, "--restart: unknown policy"),
    ({"rm": True}, 2, "--rm and --restart"),
    ({"stopTimeout": -1}, 2, "--stop-timeout"),
    ({"logMaxSize": "lots"}, 2, "--log-max-size"),
    ({"tty": True}, 2, "/process/terminal"),
    ({"runtime": "no-such-runtime"}, 3, "no-such-runtime is not installed"),
    ({"bundle": "/nonexistent"}, 3, "/nonexistent/config.json: no such file"),
    ({"stopTimeout": "10"}, 2, "options/stopTimeout: wrong type"),
])
def test_run_options_refused_in_one_line(world, changes, code, words):
    with pytest.raises(OciError) as caught:
        client.run(world.root, "bad", options=run_options(world, "bad", **changes))
    assert caught.value.exit_code == code and words in str(caught.value) and "\n" not in str(caught.value)
    assert not os.path.exists(world.root.container("bad")), "a refused run leaves nothing behind"


def test_a_config_json_that_is_not_json_is_named(world):
    options = run_options(world, "bad")
    Path(options["bundle"], "config.json").write_text('{"process": ')
    with pytest.raises(OciError) as caught:
        client.run(world.root, "bad", options=options)
    assert caught.value.exit_code == 2 and "config.json" in str(caught.value)


def test_an_older_monitor_refusing_the_options_is_named(tmp_path, monkeypatch):
    """A monitor of an older ocikit wants a whole config: the refusal says what to do."""
    from oci.errors import UsageError

    def older(root, doc, start=True):
        raise UsageError("request: /config: must be an object")

    monkeypatch.setattr(client, "request", older)
    with pytest.raises(UsageError) as caught:
        client.run(Root(str(tmp_path / "root")), "c", options={"bundle": "/b"})
    assert "an older ocikit's: stop it" in str(caught.value) and caught.value.exit_code == 2
