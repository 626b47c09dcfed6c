"""Stopping, killing and waiting for a container, whoever runs it: the monitor of a detached one,
or the runtime directly for one a front runs in the foreground (that front records the exit)."""

from __future__ import annotations

import time
from typing import Any

from oci.errors import Conflict, NotFound

from . import status
from .engine import Engine

POLL = 0.02


def _signal(text: str | None, default: str) -> int:
    from oci.runtime import lifecycle

    return lifecycle.parse_signal(text or default)


def _alive(engine: Engine, cid: str) -> bool:
    runtime, _ = engine.runtime_status(cid)
    return runtime in ("running", "paused", "created")


def stop(engine: Engine, cid: str, timeout: int, signal: str | None, monitor: Any = None) -> None:
    """The stop signal (the image's StopSignal, else SIGTERM), then SIGKILL after `timeout` seconds."""
    from oci.runtime import control, lifecycle

    record = engine.containers.load(cid)
    signum = _signal(signal, record["Config"].get("StopSignal") or "SIGTERM")
    if record.get("Monitored") and monitor is not None:
        monitor.stop(cid, timeout, signum)
        return
    if not _alive(engine, cid):
        return
    store = engine.runtime_store()
    try:
        control.thaw_if_paused(store, cid)
        lifecycle.kill(store, cid, signum)
    except (Conflict, NotFound):
        return
    deadline = time.monotonic() + max(0, timeout)
    while time.monotonic() < deadline and _alive(engine, cid):
        time.sleep(POLL)
    if _alive(engine, cid):
        try:
            lifecycle.kill(store, cid, 9, all_processes=True)
        except (Conflict, NotFound):
            pass
    _wait_recorded(engine, cid, 5.0)


def kill(engine: Engine, cid: str, signal: str, monitor: Any = None) -> None:
    from oci.runtime import lifecycle

    record = engine.containers.load(cid)
    signum = _signal(signal, "KILL")
    if record.get("Monitored") and monitor is not None:
        monitor.kill(cid, signum)
        return
    if status.current(engine, record) not in ("running", "paused"):
        raise Conflict(f"Cannot kill container: {record['Name']}: container is not running")
    lifecycle.kill(engine.runtime_store(), cid, signum)


def wait(engine: Engine, cid: str, monitor: Any = None) -> int:
    """Block until the container stops; its exit code."""
    record = engine.containers.load(cid)
    if record.get("Monitored") and monitor is not None:
        return monitor.wait(cid)
    while _alive(engine, cid):
        time.sleep(POLL * 5)
    return _wait_recorded(engine, cid, 5.0)


def _wait_recorded(engine: Engine, cid: str, limit: float) -> int:
    """The exit code once the front that ran the container has recorded it (or what is known)."""
    deadline = time.monotonic() + limit
    while True:
        try:
            record = engine.containers.load(cid)
        except NotFound:
            return 0
        state = record["State"]
        if state.get("Status") != "running" or time.monotonic() > deadline:
            return int(state.get("ExitCode") or 0)
        time.sleep(POLL)
