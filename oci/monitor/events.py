"""Container events as Docker writes them (`docker events --format '{{json .}}'`), one JSON line each.

The monitor appends each event to ROOT/events.log with one write (O_APPEND), rotating it to
events.log.1 past MAX_SIZE; `oci-mon events` reads that file set (oci.monitor.follow), so
events survive the monitor and `--since` can look back. The shape is event.schema.json.
"""

from __future__ import annotations

import os
import time

from oci.errors import InvalidInput

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ACTIONS = ("create", "start", "die", "oom", "restart", "stop", "kill", "destroy", "attach", "detach", "log-dropped")
MAX_SIZE = 1 << 20
FILTER_KEYS = ("container", "event")


def make(action: str, container_id: str, name: str, bundle: str = "", **attributes: str) -> dict[str, Any]:
    """An event of `action` for a container (attributes: exitCode, signal, restartCount, ...; all strings)."""
    stamp = time.time_ns()
    return {"status": action, "id": container_id, "from": bundle, "Type": "container", "Action": action,
            "Actor": {"ID": container_id, "Attributes": {"name": name, **attributes}}, "scope": "local",
            "time": stamp // 1_000_000_000, "timeNano": stamp}


class EventLog:
    """The append side of ROOT/events.log."""

    def __init__(self, path: str, max_size: int = MAX_SIZE) -> None:
        self.path, self.max_size = path, max_size

    def append(self, event: dict[str, Any]) -> None:
        """Write one event line; an event that cannot be written is lost, never an error for the caller."""
        from oci.jsonout import dumps

        line = (dumps(event, separators=(",", ":")) + "\n").encode()
        try:
            if os.stat(self.path).st_size + len(line) > self.max_size:
                os.rename(self.path, self.path + ".1")
        except OSError:
            pass
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        except OSError:
            return
        try:
            os.write(fd, line)
        except OSError:
            pass
        finally:
            os.close(fd)


def parse_filters(specs: list[str]) -> dict[str, set[str]]:
    """`--filter container=ID|NAME`, `--filter event=ACTION` (repeatable: any value of a key matches)."""
    filters: dict[str, set[str]] = {}
    for spec in specs:
        key, eq, value = spec.partition("=")
        if not eq or key not in FILTER_KEYS or not value:
            raise InvalidInput(f"--filter: {spec!r} is not container=ID or event=ACTION")
        if key == "event" and value not in ACTIONS:
            raise InvalidInput(f"--filter: unknown event {value!r} (one of {', '.join(ACTIONS)})")
        filters.setdefault(key, set()).add(value)
    return filters


def matches(event: dict[str, Any], filters: dict[str, set[str]]) -> bool:
    containers = filters.get("container")
    if containers is not None:
        actor = event.get("Actor") or {}
        names = {event.get("id"), (actor.get("Attributes") or {}).get("name")}
        if not containers & names:
            return False
    actions = filters.get("event")
    return actions is None or event.get("Action") in actions
