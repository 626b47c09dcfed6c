"""Where oci-mon keeps things under its state root (--root; default $OCI_MON_ROOT, else /var/lib/oci-mon).

    ROOT/monitor.lock      flock held by the running monitor for its whole life: the liveness test
    ROOT/monitor.pid       {"pid", "startTime", "started"} of the running monitor
    ROOT/monitor.sock      the monitor's control socket (requests as JSON lines, oci.monitor.proto)
    ROOT/monitor.log       the monitor's own messages (monitor.log.1: the previous file)
    ROOT/events.log        one JSON line per event (event.schema.json; events.log.1: the previous file)
    ROOT/containers/ID/
        record.json        the container's record (record.schema.json), replaced atomically
        stdout, stderr     FIFOs: the container holds them read-write, the monitor reads them
        ctr.log            its log in the CRI format unless --log-path says otherwise (ctr.log.1 ...: rotated)
        runtime.log        the runtime's --log (JSON lines), where create and start failures are read
        pidfile            the runtime's --pid-file
        console.sock       while a terminal container is created: the runtime's --console-socket

The root lives on a persistent filesystem (records and logs survive a reboot; the monitor
then knows what ran before it). Everything in it belongs to root and is mode 0700.
"""

from __future__ import annotations

import os

DEFAULT_ROOT = "/var/lib/oci-mon"


def default_root() -> str:
    return os.environ.get("OCI_MON_ROOT") or DEFAULT_ROOT


class Root:
    """The state root of one monitor."""

    def __init__(self, path: str | None = None) -> None:
        self.path = os.path.abspath(path or default_root())
        self.lock = os.path.join(self.path, "monitor.lock")
        self.pidfile = os.path.join(self.path, "monitor.pid")
        self.socket = os.path.join(self.path, "monitor.sock")
        self.log = os.path.join(self.path, "monitor.log")
        self.events = os.path.join(self.path, "events.log")
        self.containers = os.path.join(self.path, "containers")

    def make(self) -> None:
        os.makedirs(self.containers, mode=0o700, exist_ok=True)

    def container(self, container_id: str) -> str:
        from oci.runtime.state import check_id  # here: `oci-mon run` names no container's folder

        return os.path.join(self.containers, check_id(container_id))

    def record(self, container_id: str) -> str:
        return os.path.join(self.container(container_id), "record.json")

    def fifo(self, container_id: str, stream: str) -> str:
        return os.path.join(self.container(container_id), stream)

    def default_log(self, container_id: str) -> str:
        return os.path.join(self.container(container_id), "ctr.log")

    def runtime_log(self, container_id: str) -> str:
        return os.path.join(self.container(container_id), "runtime.log")

    def runtime_pidfile(self, container_id: str) -> str:
        return os.path.join(self.container(container_id), "pidfile")

    def console_socket(self, container_id: str) -> str:
        return os.path.join(self.container(container_id), "console.sock")

    def ids(self) -> list[str]:
        """The IDs of every container with a folder, sorted."""
        try:
            return sorted(name for name in os.listdir(self.containers) if not name.startswith("."))
        except FileNotFoundError:
            return []
