"""oci-mon's library for commands (oci-mon itself, ocikit's docker-like verbs): each function takes a
state root and a container (ID, name or unique ID prefix) and has no CLI concerns.

Changes go through the monitor (the only writer of records; one is started when none runs);
reads (`containers`, `inspect`, log and event files) come straight from the records, so they
work with no monitor at all, which is how `ps` can tell running containers as unmonitored.

`run` is on `oci-mon run`'s hot path (README, Performance): this module imports at its top only
what connecting and asking the monitor need; records, times and validation are imported by the
functions that read them.
"""

from __future__ import annotations

import os
import sys
import time

import oci
from oci.errors import NotFound, OciError
from oci.monitor import proto
from oci.monitor.paths import Root

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

START_TIMEOUT = 30.0
_BOOT = ("import sys; sys.path[:0] = [{path!r}]; from oci.monitor.service import main; "
         "sys.exit(main(sys.argv[1:]))")


def monitor_alive(root: Root) -> bool:
    """Whether a monitor runs for `root`: it holds ROOT/monitor.lock for its whole life."""
    import fcntl

    try:
        fd = os.open(root.lock, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def monitor_pid(root: Root) -> int | None:
    """The running monitor's pid (None when no monitor runs)."""
    if not monitor_alive(root):
        return None
    try:
        with open(root.pidfile, "rb") as f:
            return int(proto.decode(f.read())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def start_monitor(root: Root, idle_timeout: float | None = None) -> None:
    """Start a monitor for `root` in the background (a new session, no inherited stdio) and return once it
    listens. It leaves by itself `idle_timeout` seconds (default 30) after its last container stopped."""
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(oci.__file__)))
    argv = [sys.executable, "-S", "-c", _BOOT.format(path=package_parent), root.path, "--daemonize"]
    if idle_timeout is not None:
        argv += ["--idle-timeout", str(idle_timeout)]
    reader, writer = os.pipe()
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        pid = os.posix_spawn(sys.executable, argv, os.environ, file_actions=[
            (os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, null, 1), (os.POSIX_SPAWN_DUP2, writer, 2)])
    finally:
        os.close(writer)
        os.close(null)
    try:
        complaint = b""
        while True:
            chunk = os.read(reader, 4096)
            if not chunk:
                break
            complaint += chunk
    finally:
        os.close(reader)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        text = complaint.decode(errors="replace").strip().splitlines()
        raise OciError("the monitor did not start" + (f": {text[-1]}" if text else ""))


def connect(root: Root, start: bool = True, idle_timeout: float | None = None) -> proto.Channel:
    """A connection to the monitor of `root`, starting one when none runs and `start` says so."""
    deadline = time.monotonic() + START_TIMEOUT
    started = False
    while True:
        try:
            return proto.Channel(proto.connect(root.socket))
        except (FileNotFoundError, ConnectionRefusedError):
            if not start:
                raise NotFound(f"no monitor runs for {root.path}") from None
        except OSError as err:
            raise OciError(f"{root.socket}: {err.strerror or err}") from None
        if time.monotonic() > deadline:
            raise OciError(f"no monitor answers at {root.socket}")
        if not started or not monitor_alive(root):
            try:
                start_monitor(root, idle_timeout)
            except OciError:
                if started or not monitor_alive(root):
                    raise
            started = True
        else:
            time.sleep(0.05)


def request(root: Root, doc: dict[str, Any], start: bool = True) -> dict[str, Any]:
    """Send one request; its answer (an OciError with the monitor's exit code if it refused).

    A monitor that leaves (idle) just as a connection waits to be accepted resets it; the
    request was not read, so it is sent again, to a new monitor."""
    for attempt in range(3):
        channel = connect(root, start)
        try:
            return channel.request(doc)
        except (ConnectionResetError, BrokenPipeError):
            if attempt == 2:
                raise OciError("the monitor closed the connection without an answer") from None
        finally:
            channel.close()
    raise OciError("the monitor did not answer")


def resolve(root: Root, ref: str) -> str:
    from oci.monitor import record

    return record.resolve(root, ref)


def run(root: Root, container_id: str, config: dict[str, Any] | None = None, name: str | None = None,
        options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Create and start a container; its answer once it runs: {"id", "name", "pid", "status"}. Either
    `config` (record.schema.json's config object) or `options` (`oci-mon run`'s flags, which the
    monitor makes into one: oci.monitor.runspec)."""
    doc: dict[str, Any] = {"op": "run", "id": container_id, "name": name or container_id}
    doc.update({"config": config} if options is None else {"options": options})
    try:
        answer = request(root, doc)
    except OciError as err:
        if options is not None and "/config: must be an object" in str(err):  # an older monitor's words
            raise type(err)(f"{err} (the monitor of {root.path} is an older ocikit's: stop it, its containers "
                            "keep running and a new one adopts them)") from None
        raise
    return {key: answer[key] for key in ("id", "name", "pid", "status")}


def start(root: Root, ref: str) -> dict[str, Any]:
    return request(root, {"op": "start", "id": resolve(root, ref)})


def stop(root: Root, ref: str, timeout: int | None = None) -> int | None:
    """Stop it (its stop signal, SIGKILL after `timeout` seconds, default its stopTimeout); its exit code."""
    answer = request(root, {"op": "stop", "id": resolve(root, ref), "timeout": timeout})
    return answer.get("exitCode")


def restart(root: Root, ref: str, timeout: int | None = None) -> dict[str, Any]:
    return request(root, {"op": "restart", "id": resolve(root, ref), "timeout": timeout})


def kill(root: Root, ref: str, signal: str = "KILL") -> None:
    request(root, {"op": "kill", "id": resolve(root, ref), "signal": signal})


def remove(root: Root, ref: str, force: bool = False) -> None:
    """Its runtime container, its record and its default log are removed (force: kill it first)."""
    request(root, {"op": "rm", "id": resolve(root, ref), "force": force})


def wait(root: Root, ref: str) -> int | None:
    """Block until it is not running; its exit code (None when unknown)."""
    from oci.monitor import record

    container_id = resolve(root, ref)
    rec = record.load(root, container_id)
    if rec["state"]["status"] not in ("running", "created") and not monitor_alive(root):
        return rec["state"].get("exitCode")
    return request(root, {"op": "wait", "id": container_id}).get("exitCode")


def attach(root: Root, ref: str, stdin: bool = True) -> tuple[proto.Channel, dict[str, Any]]:
    """A connection attached to it (frames follow, see oci.monitor.proto) and the answer: {"tty", "stdin"}."""
    channel = connect(root)
    try:
        answer = channel.request({"op": "attach", "id": resolve(root, ref), "stdin": stdin})
    except BaseException:
        channel.close()
        raise
    return channel, answer


def inspect(root: Root, ref: str) -> dict[str, Any]:
    """The record, validated against record.schema.json."""
    from oci.monitor import record

    return record.load(root, resolve(root, ref), validate=True)


def log_path(root: Root, ref: str) -> str:
    return str(inspect(root, ref)["config"]["log"]["path"])


def describe(rec: dict[str, Any], monitored: bool, now_ns: int, boot: str) -> dict[str, Any]:
    """A `ps` row: the record's facts, with what no monitor watches told as such."""
    from oci.monitor import times
    from oci.runtime.state import process_start_time

    st = rec["state"]
    status = st["status"]
    pid = st.get("pid") or 0
    exit_code = st.get("exitCode")
    if status == "running" and not monitored:
        alive = pid > 0 and st.get("bootId") == boot and process_start_time(pid) == st.get("pidStartTime")
        if not alive:
            status, pid = "exited", 0
    started, finished = st.get("startedAt"), st.get("finishedAt")

    def ago(stamp: str | None) -> float | None:
        if not stamp:
            return None
        try:
            return max(0.0, (now_ns - times.parse_rfc3339(stamp)) / 1e9)
        except ValueError:
            return None

    uptime = ago(started) if status == "running" else None
    code = "unknown" if exit_code is None else str(exit_code)
    if status == "running":
        text = f"Up {times.human_duration(uptime or 0)}"
    elif status == "restarting":
        text = f"Restarting ({code}) {times.human_duration(ago(finished) or 0)} ago"
    elif status == "exited" and (finished or started):
        text = f"Exited ({code}) {times.human_duration(ago(finished or started) or 0)} ago"
    else:
        text = status.capitalize()
    if not monitored and status in ("running", "restarting", "created"):
        text += " (unmonitored)"
    return {"id": rec["id"], "name": rec["name"], "status": status, "statusText": text,
            "monitored": monitored and status != "exited", "pid": pid, "exitCode": exit_code,
            "signal": st.get("signal"), "oomKilled": st.get("oomKilled", False),
            "restartCount": st.get("restartCount", 0), "restartPolicy": str(_policy(rec)), "uptime": uptime,
            "created": rec["created"], "startedAt": started, "finishedAt": finished,
            "command": rec["config"]["command"], "runtime": rec["config"]["runtime"]["path"],
            "bundle": rec["config"]["bundle"], "logPath": rec["config"]["log"]["path"],
            "logDropped": st.get("logDropped", 0), "error": st.get("error", "")}


def _policy(rec: dict[str, Any]) -> object:
    from oci.monitor.policy import RestartPolicy

    return RestartPolicy.from_json(rec["config"]["restartPolicy"])


def containers(root: Root, all_states: bool = False) -> list[dict[str, Any]]:
    """`ps` rows of the containers (all_states: also those exited), oldest first; damaged records raise."""
    from oci.monitor import record

    monitored = monitor_alive(root)
    now_ns = time.time_ns()
    boot = record.boot_id()
    rows = []
    for container_id in root.ids():
        try:
            rec = record.load(root, container_id, validate=True)
        except NotFound:
            continue  # removed while we looked
        row = describe(rec, monitored, now_ns, boot)
        if all_states or row["status"] in ("running", "restarting", "created"):
            rows.append(row)
    rows.sort(key=lambda row: row["created"])
    return rows
