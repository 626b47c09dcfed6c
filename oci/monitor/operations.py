"""The requests the monitor carries out (oci.monitor.proto tells their shape): run, start, stop,
restart, kill, rm, wait, attach, ping. Each answers once it can: at once, or when the container
has ended (wait, stop, rm -f of a running one)."""

from __future__ import annotations

import os
import signal

from oci.errors import Conflict, InvalidInput, NotFound, OciError
from oci.monitor import proto, record, runspec
from oci.runtime.state import check_id

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

    from oci.monitor.daemon import Monitor
    from oci.monitor.server import Conn
    from oci.monitor.watched import Watched


def bind(monitor: Monitor) -> dict[str, Callable[[Conn, dict[str, Any]], None]]:
    """The operations of `monitor`, by name."""
    ops = {"run": run, "start": start, "stop": stop, "restart": restart, "kill": kill, "rm": rm, "wait": wait,
           "attach": attach, "ping": ping}
    return {name: _bound(monitor, function) for name, function in ops.items()}


def _bound(monitor: Monitor, function: Callable[[Monitor, Conn, dict[str, Any]], None]
           ) -> Callable[[Conn, dict[str, Any]], None]:
    def operation(conn: Conn, doc: dict[str, Any]) -> None:
        function(monitor, conn, doc)

    return operation


def get(monitor: Monitor, doc: dict[str, Any]) -> Watched:
    container_id = doc.get("id")
    w = monitor.containers.get(container_id) if isinstance(container_id, str) else None
    if w is None:
        raise NotFound(f"no such container: {container_id}")
    return w


def running_answer(w: Watched) -> dict[str, Any]:
    return {"ok": True, "id": w.id, "name": w.rec["name"], "pid": w.state["pid"], "status": "running"}


def _timeout(w: Watched, doc: dict[str, Any]) -> int:
    timeout = doc.get("timeout")
    if timeout is None:
        return int(w.config["stopTimeout"])
    if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 0:
        raise InvalidInput("request: timeout must be a number of seconds (0 or more)")
    return timeout


def ping(monitor: Monitor, conn: Conn, doc: dict[str, Any]) -> None:
    monitor.server.answer(conn, {"ok": True, "pid": os.getpid(), "containers": len(monitor.containers)})


def run(monitor: Monitor, conn: Conn, doc: dict[str, Any]) -> None:
    """Create and start a new container; answer once it runs (and, with "attach", stay attached)."""
    container_id, name = doc.get("id"), doc.get("name")
    if not isinstance(container_id, str) or not isinstance(name, str):
        raise InvalidInput("request: id and name must be strings")
    check_id(container_id)
    check_id(name)
    if "options" in doc:  # `oci-mon run`'s flags, as it read them
        options = runspec.options_of(doc["options"])
        unknown = sorted(set(options) - set(runspec.OPTION_TYPES))
        if unknown:  # a newer client's: not acted on
            monitor.say("info", f"{container_id}: ignored in its run options: {', '.join(unknown)}")
        config = record.check_config(runspec.config(options, monitor.root, container_id))
    else:
        config = record.check_config(doc.get("config"))
    unknown = sorted(set(config) - set(record.CONFIG_KEYS))
    if unknown:  # a newer client's, perhaps: kept in the record, not acted on
        monitor.say("info", f"{container_id}: ignored in its config: {', '.join(unknown)}")
    if container_id in monitor.containers or os.path.exists(monitor.root.container(container_id)):
        raise Conflict(f"container {container_id} exists already")
    for other in monitor.containers.values():
        if other.rec["name"] == name:
            raise Conflict(f"the name {name} is in use by container {other.id}")
    os.mkdir(monitor.root.container(container_id), 0o700)
    w = monitor.add(record.new(container_id, name, config))
    monitor.save(w)
    monitor.event(w, "create")
    stdin = bool(doc.get("stdin", True)) and (config["tty"] or config["interactive"])
    if doc.get("attach"):  # from its first byte of output on, kept until the answer (as `docker run -it`)
        w.phase = "creating"
        monitor.server.hold(conn)
        _attach(monitor, conn, w, stdin)

    def done(err: OciError | None) -> None:
        if err is not None:  # a failed run leaves nothing behind
            monitor.detached(w, conn)
            w.removing = [lambda: monitor.server.answer(conn, proto.error_answer(err))]
            monitor.delete(w, lambda: monitor.remove(w))
            return
        if not doc.get("attach"):
            monitor.server.answer(conn, running_answer(w))
            return
        monitor.server.answer(conn, {**running_answer(w), "tty": config["tty"], "stdin": stdin}, keep=True)

    monitor.launch(w, done)


def start(monitor: Monitor, conn: Conn, doc: dict[str, Any]) -> None:
    """Start an exited container again (a user's start: its restart count and manual stop are cleared)."""
    w = get(monitor, doc)
    if w.removing is not None:
        raise Conflict(f"container {w.id} is being removed")
    if w.phase in ("running", "creating"):
        monitor.server.answer(conn, {"ok": True, "id": w.id, "pid": w.pid, "status": w.phase})
        return
    _start_again(monitor, w, lambda err: monitor.server.answer(conn, proto.error_answer(err) if err else
                                                                running_answer(w)))


def _start_again(monitor: Monitor, w: Watched, done: Callable[[OciError | None], None]) -> None:
    if w.restart_timer is not None:
        w.restart_timer.cancel()
        w.restart_timer = None
    st = w.state
    st.update(manuallyStopped=False, restartCount=0)
    w.backoff.reset()

    def started(err: OciError | None) -> None:
        if err is not None:
            st.update(status="exited", error=err.message)
            monitor.save(w)
        done(err)

    monitor.launch(w, started)


def stop(monitor: Monitor, conn: Conn, doc: dict[str, Any]) -> None:
    w = get(monitor, doc)
    if w.phase == "creating":
        raise Conflict(f"container {w.id} is starting: try again")
    was_running = w.phase in ("running", "restarting")  # a stop event says a stop ended (or cancelled) a run

    def stopped(code: int | None) -> None:
        if was_running:
            monitor.event(w, "stop")
        monitor.server.answer(conn, {"ok": True, "id": w.id, "exitCode": code})

    monitor.stop(w, _timeout(w, doc), stopped)


def restart(monitor: Monitor, conn: Conn, doc: dict[str, Any]) -> None:
    w = get(monitor, doc)
    if w.phase == "creating":
        raise Conflict(f"container {w.id} is starting: try again")

    def again(_code: int | None) -> None:
        monitor.event(w, "restart")
        _start_again(monitor, w, lambda err: monitor.server.answer(conn, proto.error_answer(err) if err else
                                                                    running_answer(w)))

    monitor.stop(w, _timeout(w, doc), again)


def kill(monitor: Monitor, conn: Conn, doc: dict[str, Any]) -> None:
    from oci.runtime.lifecycle import parse_signal

    w = get(monitor, doc)
    signum = parse_signal(str(doc.get("signal") or "KILL"))
    if w.phase != "running":
        raise Conflict(f"container {w.id} is not running")
    if signum == signal.SIGKILL or signum == parse_signal(w.config["stopSignal"]):
        w.state["manuallyStopped"] = True  # as Docker: such a kill ends the restart policy's say
        monitor.save(w)
    monitor.signal(w, signum)
    monitor.event(w, "kill", signal=str(signum))
    monitor.server.answer(conn, {"ok": True, "id": w.id, "signal": signum})


def rm(monitor: Monitor, conn: Conn, doc: dict[str, Any]) -> None:
    """Runtime delete, then the container's folder; a running one only with force (SIGKILL first)."""
    w = get(monitor, doc)
    answer = lambda: monitor.server.answer(conn, {"ok": True, "id": w.id})  # noqa: E731
    if w.removing is not None:
        w.removing.append(answer)
        return
    if w.phase == "creating":
        raise Conflict(f"container {w.id} is starting: try again")
    if w.phase == "running" and not doc.get("force"):
        raise Conflict(f"container {w.id} is running: stop it first, or remove it with -f")
    w.removing = [answer]
    w.state["status"] = "removing"
    monitor.save(w)
    if w.restart_timer is not None:
        w.restart_timer.cancel()
        w.restart_timer = None
    if w.phase == "running":
        w.state["manuallyStopped"] = True
        monitor.signal(w, signal.SIGKILL)
        return  # its end deletes, then removes
    w.phase = "exited"
    monitor.delete(w, lambda: monitor.remove(w))


def wait(monitor: Monitor, conn: Conn, doc: dict[str, Any]) -> None:
    w = get(monitor, doc)
    if w.phase in ("running", "creating"):
        w.on_exit.append(lambda code: monitor.server.answer(conn, {"ok": True, "id": w.id, "exitCode": code}))
        return
    monitor.server.answer(conn, {"ok": True, "id": w.id, "exitCode": w.state.get("exitCode")})


def attach(monitor: Monitor, conn: Conn, doc: dict[str, Any]) -> None:
    w = get(monitor, doc)
    if w.phase != "running":
        raise Conflict(f"cannot attach to container {w.id}: it is not running")
    stdin = bool(doc.get("stdin", True)) and (w.config["tty"] or w.config["interactive"])
    monitor.server.answer(conn, {"ok": True, "id": w.id, "tty": w.config["tty"], "stdin": stdin}, keep=True)
    _attach(monitor, conn, w, stdin)


def _attach(monitor: Monitor, conn: Conn, w: Watched, stdin: bool) -> None:
    """Output frames to the client from now on; its frames: input (if `stdin`), window size, signals."""
    tty = bool(w.config["tty"])

    def on_frame(kind: bytes, payload: bytes) -> None:
        if kind == b"i" and stdin:
            w.io.write_input(tty, payload)
        elif kind == b"w" and len(payload) == 4:
            w.io.resize(int.from_bytes(payload[:2], "big"), int.from_bytes(payload[2:], "big"))
        elif kind == b"k" and payload.isdigit():
            monitor.signal(w, int(payload))

    monitor.server.attach(conn, on_frame, lambda: monitor.detached(w, conn))
    w.attached.append(conn)
    monitor.event(w, "attach")
    if w.phase not in ("running", "creating"):  # it ended between its start and this attach
        code = w.state.get("exitCode")
        monitor.server.end(conn, proto.frame(b"x", b"" if code is None else str(code).encode()))
        monitor.detached(w, conn)
