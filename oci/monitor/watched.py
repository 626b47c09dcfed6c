"""What the monitor holds for one container besides its record, and how it reads a child's end
(wait status, signal names, the process's start time that tells a recycled pid)."""

from __future__ import annotations

import os

from oci.monitor import crilog, policy
from oci.monitor.stdio import ContainerIO
from oci.runtime.lifecycle import signal_name
from oci.runtime.state import process_start_time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

    from oci.monitor.loop import Timer
    from oci.monitor.server import Conn


def start_time(pid: int) -> int | None:
    return process_start_time(pid)


def decode_status(status: int) -> tuple[int, str | None]:
    """(exit code as a shell shows it, the signal's name or None) of a wait status."""
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        return 128 + number, signal_name(number)
    return os.WEXITSTATUS(status), None


class Watched:
    """What the monitor holds for one container besides its record."""

    def __init__(self, rec: dict[str, Any], io: ContainerIO) -> None:
        self.rec = rec
        self.id: str = rec["id"]
        self.io = io
        self.phase = "exited"  # creating, running, restarting, exited
        self.pid = 0
        self.child = False  # our child: its exit status will be known
        self.pidfd = -1  # for an adopted container
        self.writer: crilog.LogWriter | None = None
        self.attached: list[Conn] = []
        self.on_exit: list[Callable[[int | None], None]] = []
        self.kill_timer: Timer | None = None
        self.restart_timer: Timer | None = None
        self.backoff = policy.Backoff()
        self.early_exit: int | None = None
        self.deleting = False
        self.after_delete: list[Callable[[], None]] = []
        self.removing: list[Callable[[], None]] | None = None
        self.started = 0.0
        self.exited_at = 0.0
        self.restart_delay = 0.0
        self.oom_base: int | None = None
        self.log_offset = 0
        self.dirty = False

    @property
    def state(self) -> dict[str, Any]:
        return self.rec["state"]

    @property
    def config(self) -> dict[str, Any]:
        return self.rec["config"]
