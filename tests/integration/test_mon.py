"""oci-mon with real containers, the same checks through oci-run, runc and crun.

Each test has its own state root and runtime root; the cleanup removes its containers and stops
the monitor it started, by pid.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time
from pathlib import Path
from typing import Iterator

import pytest

from oci.monitor import record as record_mod
from tests.integration.mon_env import RUNTIMES, MonEnv, alive, make_rootfs, unique_id, wait_for

pytestmark = pytest.mark.root

CRI_LINE = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (stdout|stderr) (F|P) .*$")


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_rootfs(tmp_path_factory.mktemp("mon-rootfs") / "rootfs")


@pytest.fixture(params=RUNTIMES)
def env(request: pytest.FixtureRequest, tmp_path: Path, rootfs: Path) -> Iterator[MonEnv]:
    mon = MonEnv(tmp_path, request.param, rootfs)
    try:
        yield mon
    finally:
        mon.cleanup()


@pytest.fixture
def runc_env(tmp_path: Path, rootfs: Path) -> Iterator[MonEnv]:
    """For checks of oci-mon's own logic, where the runtime makes no difference."""
    mon = MonEnv(tmp_path, "runc", rootfs)
    try:
        yield mon
    finally:
        mon.cleanup()


def status(env: MonEnv, cid: str) -> str:
    return str(env.state(cid)["status"])


def wait_exited(env: MonEnv, cid: str, timeout: float = 30) -> dict:
    """Its record once it says exited, and the die event is written (the record comes first)."""
    state = wait_for(lambda: env.state(cid) if env.state(cid)["status"] == "exited" else None, timeout,
                     f"{cid} to exit")
    wait_for(lambda: any(e["id"] == cid and e["Action"] == "die" for e in env.events()), 10, "its die event")
    return state  # type: ignore[no-any-return]


def test_run_returns_at_once_detached_with_stdio_closed(env: MonEnv) -> None:
    cid = unique_id()
    bundle = env.bundle("sleep", "300")
    # Pipes as stdio: communicate() returns only when every holder closed them, so a monitor that
    # kept them would hold this up for the container's whole life.
    proc = subprocess.Popen(env.argv("run", "--runtime", env.runtime, "--runtime-root", str(env.runtime_root),
                                     "-b", bundle, cid), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    answer = json.loads(out)
    assert answer["id"] == cid and answer["status"] == "running" and answer["pid"] > 0
    monitor = env.monitor_pid()
    assert monitor and alive(monitor)
    env.started_monitors.add(monitor)
    assert alive(answer["pid"])
    with open(f"/proc/{answer['pid']}/status") as f:
        ppid = int(next(line for line in f if line.startswith("PPid:")).split()[1])
    assert ppid == monitor, "the monitor is the container init's parent (subreaper)"
    for fd in (0, 1, 2):
        assert os.readlink(f"/proc/{monitor}/fd/{fd}") == "/dev/null"
    assert os.getsid(monitor) != os.getsid(0), "the monitor has a session of its own"
    assert os.getsid(monitor) != monitor, "and is not its leader (no controlling terminal can be acquired)"
    rows = json.loads(env.mon("ps", check=True).stdout)
    assert [(r["id"], r["status"], r["monitored"], r["pid"]) for r in rows] == [(cid, "running", True, answer["pid"])]
    record_mod.check(env.record(cid), "record", "record.json")


def test_logs_in_cri_format_with_partial_and_long_lines(env: MonEnv) -> None:
    cid = unique_id()
    script = ("echo out-1; echo err-1 >&2; printf 'no newline'; sleep 0.3; echo ' then newline'; "
              "head -c 40000 /dev/zero | tr '\\0' x; echo; printf '\\n'; echo last")
    env.run(cid, env.bundle("sh", "-c", script))
    wait_exited(env, cid)
    raw = (env.root / "containers" / cid / "ctr.log").read_bytes().splitlines()
    assert raw and all(CRI_LINE.match(line) for line in raw), raw[:5]
    parsed = [line.split(b" ", 3) for line in raw]
    first = next(i for i, p in enumerate(parsed) if p[3].startswith(b"xxx"))
    last = next(i for i in range(first, len(parsed)) if parsed[i][2] == b"F")
    long_line = parsed[first:last + 1]  # split where reads ended, and at 16 KiB
    assert [p[2] for p in long_line] == [b"P"] * (len(long_line) - 1) + [b"F"]
    assert len(long_line) >= 3 and all(len(p[3]) <= 16384 for p in long_line)
    assert b"".join(p[3] for p in long_line) == b"x" * 40000
    assert [b"stdout", b"P", b"no newline"] == parsed[[p[3] for p in parsed].index(b"no newline")][1:]
    logs = env.mon("logs", cid, check=True)
    assert logs.stdout == f"out-1\nno newline then newline\n{'x' * 40000}\n\nlast\n"
    assert logs.stderr == "err-1\n"
    assert env.mon("logs", "--tail", "2", cid, check=True).stdout == "\nlast\n"
    stamped = env.mon("logs", "-t", "--tail", "1", cid, check=True).stdout
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z last\n", stamped), stamped
    assert env.mon("logs", "--since", "2999-01-01T00:00:00Z", cid, check=True).stdout == ""
    assert env.mon("logs", "--since", "10m", cid, check=True).stdout.endswith("last\n")


def test_logs_follow_across_rotations(env: MonEnv) -> None:
    cid = unique_id()
    script = "sleep 1; i=1; while [ $i -le 300 ]; do echo line-$i; i=$((i+1)); usleep 5000; done"
    env.run(cid, env.bundle("sh", "-c", script), "--log-max-size", "2k", "--log-max-files", "3")
    follower = subprocess.Popen(env.argv("logs", "-f", cid), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = follower.communicate(timeout=90)  # -f ends by itself once the container has stopped
    assert follower.returncode == 0, err
    assert out.split() == [f"line-{i}" for i in range(1, 301)]
    folder = env.root / "containers" / cid
    assert (folder / "ctr.log.1").exists() and (folder / "ctr.log.2").exists()
    assert not (folder / "ctr.log.3").exists()
    assert all(path.stat().st_size <= 2048 for path in folder.glob("ctr.log*"))


def test_exit_code_signal_and_times_recorded(env: MonEnv) -> None:
    cid = unique_id()
    env.run(cid, env.bundle("sh", "-c", "sleep 0.2; exit 3"))
    assert env.mon("wait", cid, check=True).stdout == "3\n"
    st = env.state(cid)
    assert (st["status"], st["exitCode"], st["signal"], st["oomKilled"]) == ("exited", 3, None, False)
    assert st["startedAt"] < st["finishedAt"]
    killed = unique_id()
    env.run(killed, env.bundle("sh", "-c", "kill -TERM $$; sleep 5", pid_namespace=False))
    assert env.mon("wait", killed, check=True).stdout == "143\n"
    assert (env.state(killed)["exitCode"], env.state(killed)["signal"]) == (143, "SIGTERM")
    rows = {r["id"]: r for r in json.loads(env.mon("ps", "-a", check=True).stdout)}
    assert rows[cid]["statusText"].startswith("Exited (3)")
    assert not json.loads(env.mon("ps", check=True).stdout)
    assert [e["Actor"]["Attributes"].get("exitCode") for e in env.events() if e["id"] == cid and
            e["Action"] == "die"] == ["3"]
    assert not env.runtime_has(cid), "the runtime's container is deleted once it exited"


def test_oom_kill_recorded(env: MonEnv) -> None:
    cid = unique_id()
    env.run(cid, env.bundle("sh", "-c", "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived",
                            memory=32 << 20))
    st = wait_exited(env, cid, 60)
    assert (st["oomKilled"], st["exitCode"], st["signal"]) == (True, 137, "SIGKILL"), st
    actions = [e["Action"] for e in env.events() if e["id"] == cid]
    assert actions.index("oom") < actions.index("die")


def start_times(env: MonEnv, cid: str) -> list[int]:
    return [e["timeNano"] for e in env.events() if e["id"] == cid and e["Action"] == "start"]


def test_restart_on_failure_with_backoff(env: MonEnv) -> None:
    cid = unique_id()
    env.run(cid, env.bundle("sh", "-c", "echo run; exit 1"), "--restart", "on-failure:3")
    wait_for(lambda: env.state(cid)["restartCount"] == 3 and status(env, cid) == "exited", 60, "three restarts")
    time.sleep(1)
    st = env.state(cid)
    assert (st["restartCount"], st["exitCode"], st["status"]) == (3, 1, "exited")
    events = [e for e in env.events() if e["id"] == cid]
    assert [e["Action"] for e in events].count("restart") == 3
    dies = [e["timeNano"] for e in events if e["Action"] == "die"]
    starts = start_times(env, cid)
    assert len(starts) == 4 and len(dies) == 4
    for k, (died, started) in enumerate(zip(dies, starts[1:], strict=False)):
        assert started - died >= 100_000_000 * 2 ** k * 0.99, f"restart {k + 1} waited {(started - died) / 1e9} s"
    assert env.mon("logs", cid, check=True).stdout == "run\n" * 4


def test_restart_policies_no_and_on_failure_on_success(env: MonEnv) -> None:
    failing, succeeding = unique_id(), unique_id()
    env.run(failing, env.bundle("sh", "-c", "exit 1"), "--restart", "no")
    env.run(succeeding, env.bundle("sh", "-c", "exit 0"), "--restart", "on-failure")
    wait_exited(env, failing)
    wait_exited(env, succeeding)
    time.sleep(0.5)
    assert env.state(failing)["restartCount"] == 0 and env.state(succeeding)["restartCount"] == 0
    assert len(start_times(env, failing)) == 1 and len(start_times(env, succeeding)) == 1


def test_restart_always_ends_with_a_manual_stop(env: MonEnv) -> None:
    cid = unique_id()
    env.run(cid, env.bundle("sh", "-c", "trap 'exit 0' TERM; sleep 0.3 & wait; exit 0"), "--restart", "always")
    wait_for(lambda: env.state(cid)["restartCount"] >= 2 and status(env, cid) == "running", 60, "two restarts")
    env.mon("stop", "-t", "5", cid, check=True)
    st = env.state(cid)
    assert st["status"] == "exited" and st["manuallyStopped"]
    count = st["restartCount"]
    time.sleep(1)
    assert env.state(cid)["restartCount"] == count and status(env, cid) == "exited"
    assert [e["Action"] for e in env.events() if e["id"] == cid][-2:] == ["die", "stop"]
    env.mon("start", cid, check=True)
    assert status(env, cid) == "running" and not env.state(cid)["manuallyStopped"]


def test_unless_stopped_restarts_after_a_crash_not_after_stop(env: MonEnv) -> None:
    cid = unique_id()
    env.run(cid, env.bundle("sh", "-c", "trap 'exit 5' USR1; trap 'exit 0' TERM; while :; do usleep 50000; done"),
            "--restart", "unless-stopped")
    first = env.state(cid)["pid"]
    env.mon("kill", cid, "USR1", check=True)  # not the stop signal: the policy still applies
    wait_for(lambda: env.state(cid)["restartCount"] == 1 and status(env, cid) == "running", 30, "a restart")
    assert env.state(cid)["pid"] != first
    assert [e["Actor"]["Attributes"].get("exitCode") for e in env.events() if e["id"] == cid and
            e["Action"] == "die"] == ["5"]
    env.mon("stop", cid, check=True)
    time.sleep(0.5)
    st = env.state(cid)
    assert (st["status"], st["exitCode"], st["restartCount"]) == ("exited", 0, 1)


def test_stop_waits_its_grace_then_kills(env: MonEnv) -> None:
    stubborn = unique_id()
    env.run(stubborn, env.bundle("sh", "-c", "trap '' TERM; while :; do usleep 50000; done"))
    began = time.monotonic()
    env.mon("stop", "-t", "1", stubborn, check=True)
    assert time.monotonic() - began >= 1.0
    st = env.state(stubborn)
    assert (st["exitCode"], st["signal"], st["manuallyStopped"]) == (137, "SIGKILL", True)
    kills = [e["Actor"]["Attributes"]["signal"] for e in env.events() if e["id"] == stubborn and e["Action"] == "kill"]
    assert kills == [str(int(signal.SIGTERM)), str(int(signal.SIGKILL))]
    polite = unique_id()
    env.run(polite, env.bundle("sh", "-c", "trap 'exit 42' USR2; while :; do usleep 50000; done",
                               annotations={"org.opencontainers.image.stopSignal": "SIGUSR2"}))
    assert env.record(polite)["config"]["stopSignal"] == "SIGUSR2"
    env.mon("stop", "-t", "30", polite, check=True)
    assert (env.state(polite)["exitCode"], env.state(polite)["signal"]) == (42, None)


def read_until(fd: int, wanted: bytes, seen: bytearray, timeout: float = 20) -> bytes:
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {wanted!r} in {bytes(seen)[-500:]!r}")
        if select.select([fd], [], [], left)[0]:
            try:
                data = os.read(fd, 4096)
            except OSError:
                data = b""
            if not data:
                raise AssertionError(f"terminal closed before {wanted!r}: {bytes(seen)[-500:]!r}")
            seen += data
    return bytes(seen)


def attach_in_pty(env: MonEnv, cid: str) -> tuple[int, int]:
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execvp(env.argv("attach", cid)[0], env.argv("attach", cid))
        finally:
            os._exit(127)
    return pid, fd


def test_attach_detach_keys_and_resize_in_a_terminal(env: MonEnv) -> None:
    cid = unique_id()
    env.run(cid, env.bundle("sh", tty=True), "-i", "-t")
    pid, fd = attach_in_pty(env, cid)
    try:
        seen = bytearray()
        time.sleep(0.5)
        os.write(fd, b"echo hi-$((40+2))\r")
        read_until(fd, b"hi-42", seen)
        fcntlmod = __import__("fcntl")
        fcntlmod.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))  # SIGWINCH to the client
        time.sleep(0.5)
        os.write(fd, b"stty size\r")
        read_until(fd, b"33 101", seen)
        os.write(fd, b"\x10\x11")  # ctrl-p ctrl-q
        _, wstatus = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(wstatus) == 0
        pid = 0
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    assert status(env, cid) == "running", "detaching leaves it running"
    pid, fd = attach_in_pty(env, cid)
    try:
        time.sleep(0.5)
        os.write(fd, b"exit 7\r")
        _, wstatus = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(wstatus) == 7, "attach exits with the container's code"
    finally:
        os.close(fd)
    assert env.state(cid)["exitCode"] == 7
    assert "hi-42" in env.mon("logs", cid, check=True).stdout, "the terminal's output is logged too"
    actions = [e["Action"] for e in env.events() if e["id"] == cid]
    assert actions.count("attach") == 2 and "detach" in actions


def test_attach_without_terminal_forwards_stdin_and_signals(env: MonEnv) -> None:
    cid = unique_id()
    env.run(cid, env.bundle("sh", "-c", "trap 'echo got-int; exit 3' INT; "
                                        "while read line; do echo \"got:$line\"; done; sleep 300"), "-i")
    client = subprocess.Popen(env.argv("attach", cid), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    assert client.stdin is not None and client.stdout is not None
    client.stdin.write(b"hello\n")
    client.stdin.flush()
    seen = bytearray()
    read_until(client.stdout.fileno(), b"got:hello", seen)
    time.sleep(0.3)
    client.send_signal(signal.SIGINT)  # --sig-proxy: the container's init gets it
    read_until(client.stdout.fileno(), b"got-int", seen)
    assert client.wait(timeout=30) == 3
    assert env.state(cid)["exitCode"] == 3


def test_detached_terminal_is_held_and_logged(env: MonEnv) -> None:
    cid = unique_id()
    env.run(cid, env.bundle("sh", "-c", "tty; stty size; echo done-$((6*7))", tty=True), "-t")
    wait_exited(env, cid)
    out = env.mon("logs", cid, check=True).stdout
    assert re.search(r"/dev/(pts/\d+|console)\r?\n", out), out
    assert "done-42" in out
    assert env.state(cid)["exitCode"] == 0


def test_monitor_killed_containers_go_on_and_are_adopted(env: MonEnv) -> None:
    ticker, sleeper, short = unique_id(), unique_id(), unique_id()
    env.run(ticker, env.bundle("sh", "-c", "i=0; trap 'exit 0' TERM; while :; do echo tick-$i; i=$((i+1)); "
                                           "usleep 100000; done"))
    env.run(sleeper, env.bundle("sleep", "300"))
    env.run(short, env.bundle("sh", "-c", "sleep 2; exit 4"), "--restart", "on-failure:1")
    pids = {cid: env.state(cid)["pid"] for cid in (ticker, sleeper)}
    monitor = env.monitor_pid()
    assert monitor
    os.kill(monitor, signal.SIGKILL)
    wait_for(lambda: not alive(monitor), 10, "the monitor to die")
    time.sleep(2.5)  # the ticker writes into its FIFO, the short one ends, while nobody watches
    assert all(alive(pid) for pid in pids.values()), "the containers go on without their monitor"
    rows = {r["id"]: r for r in json.loads(env.mon("ps", "-a", check=True).stdout)}
    assert rows[ticker]["status"] == "running" and not rows[ticker]["monitored"]
    assert rows[ticker]["statusText"].endswith("(unmonitored)")
    for cid in (ticker, sleeper, short):
        record_mod.check(env.record(cid), "record", cid)
    assert env.monitor_pid() is None or not alive(env.monitor_pid() or 0)
    # Any request starts a new monitor, which adopts what still runs.
    env.mon("kill", sleeper, "CONT", check=True)
    assert env.monitor_pid() != monitor
    st = env.state(ticker)
    assert st["adopted"] and st["status"] == "running" and st["pid"] == pids[ticker]
    wait_for(lambda: env.state(short)["restartCount"] == 1, 30, "the short container's restart")
    ticks = wait_for(lambda: [int(n) for n in re.findall(r"tick-(\d+)", env.mon("logs", ticker).stdout)
                              if n] if len(re.findall("tick-", env.mon("logs", ticker).stdout)) > 40 else None,
                     30, "ticks after the adoption")
    assert ticks == list(range(len(ticks))), "no line written while unmonitored was lost"
    rows = {r["id"]: r for r in json.loads(env.mon("ps", check=True).stdout)}
    assert rows[ticker]["monitored"]
    env.mon("stop", ticker, check=True)
    st = env.state(ticker)
    assert st["status"] == "exited" and st["exitCode"] is None and "unknown" in st["error"]


def test_rm_refuses_a_running_container_and_force_removes_it(env: MonEnv) -> None:
    cid = unique_id()
    env.run(cid, env.bundle("sleep", "300"))
    refused = env.mon("rm", cid)
    assert refused.returncode == 7 and "running" in refused.stderr
    env.mon("rm", "-f", cid, check=True)
    assert not (env.root / "containers" / cid).exists()
    assert not env.runtime_has(cid)
    assert env.mon("inspect", cid).returncode == 3
    assert [e["Action"] for e in env.events() if e["id"] == cid][-1] == "destroy"


def test_events_stream_as_json_lines(runc_env: MonEnv) -> None:
    env = runc_env
    watcher = subprocess.Popen(env.argv("events", "--filter", "event=die", "--filter", "event=start"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(1)
        cid = unique_id()
        env.run(cid, env.bundle("sh", "-c", "exit 2"))
        out = b""
        deadline = time.monotonic() + 30
        assert watcher.stdout is not None
        fd = watcher.stdout.fileno()
        while out.count(b"\n") < 2 and time.monotonic() < deadline:
            if select.select([fd], [], [], 1)[0]:
                out += os.read(fd, 65536)
        lines = [json.loads(line) for line in out.splitlines()]
        assert [(e["Action"], e["id"]) for e in lines] == [("start", cid), ("die", cid)]
        assert lines[1]["Actor"]["Attributes"]["exitCode"] == "2"
        for event in lines:
            record_mod.check(event, "event", "event")
    finally:
        watcher.kill()
        watcher.wait()
    past = env.mon("events", "--since", "1h", "--until", "0s", "--filter", f"container={cid}", check=True)
    assert [json.loads(line)["Action"] for line in past.stdout.splitlines()] == ["create", "start", "die"]


def test_full_log_disk_drops_lines_never_blocks(runc_env: MonEnv) -> None:
    env = runc_env
    disk = env.base / "logs"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32k", "tmpfs", str(disk)], check=True)
    try:
        cid = unique_id()
        env.run(cid, env.bundle("sh", "-c", "i=0; while [ $i -lt 3000 ]; do echo line-$i-padding-padding; "
                                            "i=$((i+1)); done; echo done >&2"),
                "--log-path", str(disk / "ctr.log"))
        st = wait_exited(env, cid, 60)
        assert st["exitCode"] == 0, "the container ran to its end"
        assert st["logDropped"] > 0
        text = (disk / "ctr.log").read_bytes().splitlines()
        assert all(CRI_LINE.match(line) for line in text), "only whole records"
        assert "log lines were dropped" in (env.root / "monitor.log").read_text()
        assert any(e["Action"] == "log-dropped" for e in env.events() if e["id"] == cid)
    finally:
        env.mon("rm", "-f", cid)
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_names_prefixes_and_bad_requests(runc_env: MonEnv) -> None:
    env = runc_env
    cid = unique_id("named")
    bundle = env.bundle("sleep", "300")
    env.run(cid, bundle, "--name", "web-" + cid[-6:])
    assert env.mon("inspect", "web-" + cid[-6:], check=True).stdout.count(cid) >= 1
    again = env.mon("run", "--runtime", env.runtime, "--runtime-root", str(env.runtime_root), "-b", bundle, cid)
    assert again.returncode == 7 and "exists" in again.stderr
    missing = env.mon("run", "--runtime", "no-such-runtime", "-b", bundle, unique_id())
    assert missing.returncode == 3 and "no-such-runtime" in missing.stderr
    no_tty = env.mon("run", "--runtime", env.runtime, "-t", "-b", bundle, unique_id())
    assert no_tty.returncode == 2 and "/process/terminal" in no_tty.stderr
    broken = env.bundle("true")
    Path(broken, "config.json").write_text("{not json")
    bad = env.mon("run", "--runtime", env.runtime, "-b", broken, unique_id())
    assert bad.returncode == 2 and "config.json" in bad.stderr
    failing = env.bundle("/no/such/program")
    failed = env.mon("run", "--runtime", env.runtime, "--runtime-root", str(env.runtime_root), "-b", failing,
                     "gone-" + cid[-6:])
    assert failed.returncode != 0 and "runc" in failed.stderr
    assert not (env.root / "containers" / ("gone-" + cid[-6:])).exists(), "a failed run leaves nothing behind"
    assert env.mon("stop", "nobody").returncode == 3
