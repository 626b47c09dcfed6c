"""A new monitor takes over what the records of its state root say (see oci.monitor.daemon: what
the monitor risks): live containers are watched again through a pidfd and their FIFOs, dead
ones ended with an unknown exit status, restarts due after a reboot started."""

from __future__ import annotations

import os
import time

from oci.errors import InvalidInput, OciError
from oci.monitor import crilog, policy, proto, record
from oci.monitor.watched import Watched, start_time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from oci.monitor.daemon import Monitor


def adopt_all(monitor: Monitor) -> None:
    """Take over what the records say: live containers are watched again, dead ones ended."""
    for container_id in monitor.root.ids():
        path = monitor.root.record(container_id)
        try:
            with open(path, "rb") as f:
                rec = proto.decode(f.read())
            record.check_config(rec["config"], path)
            if not isinstance(rec.get("state"), dict) or rec.get("id") != container_id:
                raise InvalidInput("/state: missing, or /id differs from the folder name")
        except (OSError, ValueError, KeyError, TypeError, OciError) as err:
            monitor.say("error", f"{path}: not adopted: {err}")
            continue
        w = monitor.add(rec)
        try:
            adopt(monitor, w)
        except Exception:
            import traceback

            monitor.say("error", f"{container_id}: adoption failed: " + traceback.format_exc().replace("\n", " | "))

def adopt(monitor: Monitor, w: Watched) -> None:
    st = w.state
    status = st.get("status")
    same_boot = st.get("bootId") == monitor.boot
    if status == "removing":
        w.removing = []
        monitor.delete(w, lambda: monitor.remove(w))
    elif status == "created" and not st.get("startedAt"):  # a `run` that never got to run
        monitor.say("info", f"{w.id}: its creation was interrupted: removed")
        w.removing = []
        monitor.delete(w, lambda: monitor.remove(w))
    elif status in ("running", "created"):
        pid = int(st.get("pid") or 0)
        pidfd = -1
        if same_boot and pid > 0:
            try:
                pidfd = os.pidfd_open(pid)
            except OSError:
                pidfd = -1
        if pidfd >= 0 and start_time(pid) == st.get("pidStartTime"):
            watch_adopted(monitor, w, pid, pidfd)
            return
        if pidfd >= 0:
            os.close(pidfd)
        w.phase = "running"
        w.started = 0.0
        monitor.say("info", f"{w.id}: it ended while no monitor watched it")
        monitor.finish(w, None, None, "exited while no monitor watched it: exit status unknown")
    elif status == "restarting":
        w.phase = "restarting"
        w.restart_delay = policy.FIRST_DELAY
        w.exited_at = time.monotonic()
        monitor.schedule_restart(w)
    else:
        w.phase = "exited"
        restart_policy = policy.RestartPolicy.from_json(w.config["restartPolicy"])
        if not same_boot and st.get("startedAt") and policy.restart_at_boot(
                restart_policy, st.get("exitCode"), bool(st.get("manuallyStopped")),
                int(st.get("restartCount", 0))):
            monitor.say("info", f"{w.id}: started again after a reboot ({restart_policy})")
            w.phase = st["status"] = "restarting"
            st["manuallyStopped"] = False
            monitor.restart_now(w)

def watch_adopted(monitor: Monitor, w: Watched, pid: int, pidfd: int) -> None:
    w.pid, w.pidfd, w.child = pid, pidfd, False
    w.phase = "running"
    w.started = time.monotonic()
    w.oom_base = w.state.get("oomKillsAtStart")
    monitor.loop.watch(pidfd, lambda _mask: monitor.finish(
        w, None, None, "exited while watched by a monitor that was not its parent: exit status unknown"))
    cfg = w.config
    log = cfg["log"]
    w.writer = crilog.LogWriter(log["path"], log["maxSize"], log["maxFiles"])
    if cfg["tty"]:
        w.state["error"] = "its terminal closed with the monitor that held it: output is no longer logged"
    else:
        w.io.reopen_fifos()
    w.state.update(adopted=True, monitorPid=os.getpid())
    monitor.save(w)
    monitor.say("info", f"{w.id}: adopted (pid {pid})")
