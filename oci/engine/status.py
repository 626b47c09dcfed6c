"""A container's status now, from its record, the runtime's state and (when detached) its monitor's.

The record says what the front last did (created, started, exited with a code); the runtime
says whether the process still lives (its pid and start time) and whether it is frozen; a
monitored container's monitor knows its exit code and restarts.
"""

from __future__ import annotations

from typing import Any

from .engine import Engine


def refresh(engine: Engine, record: dict[str, Any], monitor: Any = None) -> dict[str, Any]:
    """The record with its State brought up to date (not saved)."""
    state = record["State"]
    if record.get("Monitored") and monitor is None:
        from .monitor import connect

        monitor = connect(engine)
    if record.get("Monitored") and monitor is not None:
        found = monitor.state(record["Id"])
        if found is not None:
            record["RestartCount"] = found.pop("RestartCount", 0)
            state.update(found)
            return record
    status, pid = engine.runtime_status(record["Id"])
    if status in ("running", "paused"):
        state.update(Status=status, Running=True, Paused=status == "paused", Pid=pid)
    elif status == "created":
        state.update(Status="created", Running=False, Pid=pid)
    elif state.get("Status") in ("running", "paused"):
        state.update(Status="exited", Running=False, Paused=False, Pid=0)  # its exit went unrecorded
    return record


def current(engine: Engine, record: dict[str, Any], monitor: Any = None) -> str:
    return refresh(engine, record, monitor)["State"]["Status"]
