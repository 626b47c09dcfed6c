"""The front's side of oci-mon, the monitor of detached containers (issue 16): every call to it
goes through this module, so its interface lives in one place.

One monitor serves a state root, with its records in ROOT/monitor and its runtime's state in
the root's runtime folder (/run/ocikit/TAG), the folder foreground runs use too: the runtime
sees one set of containers whoever started them. A container it runs is marked `Monitored`
in its record; its State then comes from the monitor's record (exit code, restarts, OOM).
"""

from __future__ import annotations

import os
import time
from typing import Any

from oci.errors import NotFound

from .engine import Engine


class Monitor:
    """oci-mon's client calls for one state root's containers."""

    def __init__(self, engine: Engine) -> None:
        from oci.monitor.paths import Root

        self.engine = engine
        self.root = Root(engine.root.sub("monitor"))

    def _known(self, cid: str) -> bool:
        return os.path.exists(self.root.record(cid))

    def start(self, record: dict[str, Any], *, interactive: bool, tty: bool) -> dict[str, Any]:
        """Run the container detached (again, for one the monitor knows); {"id", "pid", ...} once it runs."""
        from oci.monitor import client, runtimes

        cid = record["Id"]
        engine = self.engine
        if not record.get("Monitored"):
            record["Monitored"] = True
            engine.containers.save(record)
        if self._known(cid):
            answer = client.start(self.root, cid)
        else:
            restart = record["HostConfig"]["RestartPolicy"]
            runtime = runtimes.resolve(engine.runtime_name, *runtimes.caller())
            config = {"bundle": engine.containers.folder(cid),
                      "runtime": {"path": runtime, "root": engine.root.runtime},
                      "command": [record["Path"], *record["Args"]], "tty": tty, "interactive": interactive,
                      "restartPolicy": {"name": restart["Name"] or "no",
                                        "maximumRetryCount": restart["MaximumRetryCount"]},
                      "stopSignal": _signal_name(record["Config"].get("StopSignal") or "SIGTERM"),
                      "stopTimeout": int(record["Config"].get("StopTimeout") or 10),
                      "log": {"path": engine.containers.log_path(cid), "maxSize": 0, "maxFiles": 1}}
            answer = client.run(self.root, cid, config, name=cid)
        return answer

    def state(self, cid: str) -> dict[str, Any] | None:
        """Docker's State of a container the monitor knows (None if it does not)."""
        from oci.monitor import client, record

        try:
            rec = record.load(self.root, cid)
        except NotFound:
            return None
        row = client.describe(rec, client.monitor_alive(self.root), time.time_ns(), record.boot_id())
        status = row["status"]
        if status == "removing":
            status = "dead"
        paused = False
        if status == "running":
            paused = self.engine.runtime_status(cid)[0] == "paused"
            status = "paused" if paused else status
        return {"Status": status, "Running": status in ("running", "paused", "restarting"), "Paused": paused,
                "Restarting": status == "restarting", "OOMKilled": bool(row["oomKilled"]), "Pid": row["pid"],
                "ExitCode": row["exitCode"] if row["exitCode"] is not None else 0, "Error": row["error"],
                "StartedAt": row["startedAt"] or "0001-01-01T00:00:00Z",
                "FinishedAt": row["finishedAt"] or "0001-01-01T00:00:00Z", "RestartCount": row["restartCount"]}

    def stop(self, cid: str, timeout: int, signum: int) -> None:
        from oci.monitor import client

        if not self._known(cid):
            return
        if _signal_name(str(signum)) != client.inspect(self.root, cid)["config"]["stopSignal"]:
            client.kill(self.root, cid, str(signum))  # `stop -s`: this signal first, SIGKILL after the timeout
        client.stop(self.root, cid, timeout)

    def kill(self, cid: str, signum: int) -> None:
        from oci.monitor import client

        client.kill(self.root, cid, str(signum))

    def wait(self, cid: str) -> int:
        from oci.monitor import client

        code = client.wait(self.root, cid)
        return -1 if code is None else code

    def remove(self, cid: str) -> None:
        """Forget the container in the monitor (killing it first); its runtime container goes too."""
        from oci.monitor import client

        if self._known(cid):
            try:
                client.remove(self.root, cid, force=True)
            except NotFound:
                pass


def _signal_name(text: str) -> str:
    from oci.runtime.lifecycle import parse_signal, signal_name

    return signal_name(parse_signal(text))


def connect(engine: Engine) -> Monitor | None:
    """The monitor for `engine`'s containers, or None when oci-mon is not installed."""
    try:
        import oci.monitor.client  # noqa: F401
    except ImportError:
        return None
    return Monitor(engine)
