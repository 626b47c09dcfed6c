"""The monitor's event loop: epoll over file descriptors, timers, and the children it reaps.

One thread does everything. A handler runs to its end before the next one starts, so the
monitor's state needs no locks; a handler never waits on a process or a peer. Children are
runtime commands (whose end is a callback) and, the monitor being the subreaper, the
containers' inits: their wait status goes to whoever claimed their pid, or is kept a minute
for a claim that comes late (an init can end before the runtime that made it has returned).
"""

from __future__ import annotations

import heapq
import os
import select
import signal
import socket
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

# Signals the monitor handles or ignores, back to their defaults in what it starts.
SPAWN_SIGDEF = (signal.SIGPIPE, signal.SIGHUP, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM)
STRANGER_KEPT = 60.0


def _call(callback: Callable[[], None]) -> Callable[[int], None]:
    def handler(_value: int) -> None:
        callback()

    return handler


class Timer:
    __slots__ = ("when", "callback", "cancelled")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when, self.callback, self.cancelled = when, callback, False

    def cancel(self) -> None:
        self.cancelled = True


class Loop:
    """epoll, timers and children of one process."""

    def __init__(self, complain: Callable[[str], None]) -> None:
        self.complain = complain  # where a handler's failure is told
        self.poller = select.epoll()
        self.handlers: dict[int, Callable[[int], None]] = {}
        self.heap: list[tuple[float, int, Timer]] = []
        self.timer_count = 0
        self.children: dict[int, Callable[[int], None]] = {}  # pid -> done(wait status)
        self.strangers: dict[int, tuple[int, float]] = {}  # pid -> (wait status, when), unclaimed yet
        self.quit = False
        self.wakeup: tuple[socket.socket, socket.socket] | None = None

    def open(self) -> None:
        """SIGCHLD wakes the loop; SIGTERM and SIGINT end it; SIGHUP is ignored."""
        ours, theirs = socket.socketpair()
        for end in (ours, theirs):
            end.setblocking(False)
        self.wakeup = (ours, theirs)
        signal.set_wakeup_fd(theirs.fileno(), warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, self._leave)
        signal.signal(signal.SIGINT, self._leave)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        self.watch(ours.fileno(), self._on_wakeup)

    def _leave(self, *_: object) -> None:
        self.quit = True

    def _on_wakeup(self, _mask: int) -> None:
        assert self.wakeup is not None
        try:
            while self.wakeup[0].recv(4096):
                pass
        except BlockingIOError:
            pass

    # ---- descriptors and timers ----

    def watch(self, fd: int, handler: Callable[[int], None], mask: int = select.EPOLLIN) -> None:
        self.poller.register(fd, mask)
        self.handlers[fd] = handler

    def modify(self, fd: int, mask: int) -> None:
        try:
            self.poller.modify(fd, mask)
        except OSError:
            pass

    def unwatch(self, fd: int) -> None:
        if self.handlers.pop(fd, None) is not None:
            try:
                self.poller.unregister(fd)
            except OSError:
                pass

    def after(self, delay: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(time.monotonic() + max(0.0, delay), callback)
        self.timer_count += 1
        heapq.heappush(self.heap, (timer.when, self.timer_count, timer))
        return timer

    def _timeout(self) -> float | None:
        while self.heap and self.heap[0][2].cancelled:
            heapq.heappop(self.heap)
        return max(0.0, self.heap[0][0] - time.monotonic()) if self.heap else None

    def _due(self) -> list[Timer]:
        now = time.monotonic()
        found = []
        while self.heap and self.heap[0][0] <= now:
            timer = heapq.heappop(self.heap)[2]
            if not timer.cancelled:
                found.append(timer)
        return found

    # ---- children ----

    def spawn(self, argv: list[str], stdio: tuple[int, int, int], done: Callable[[int], None]) -> int:
        """Start argv in a session of its own with `stdio` as fds 0-2; `done(wait status)` when it ends."""
        actions = [(os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate(stdio)]
        pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions, setsid=True, setsigdef=SPAWN_SIGDEF)
        self.children[pid] = done
        return pid

    def claim(self, pid: int, done: Callable[[int], None]) -> int | None:
        """Have `done(wait status)` called when child `pid` ends; its status now if it has ended already."""
        early = self.strangers.pop(pid, None)
        if early is not None:
            return early[0]
        self.children[pid] = done
        return None

    def release(self, pid: int) -> None:
        self.children.pop(pid, None)

    def reap(self) -> None:
        """Collect every child that ended: runtime commands, container inits, orphans of either."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            done = self.children.pop(pid, None)
            if done is not None:
                self.guard(done, status)
                continue
            now = time.monotonic()
            self.strangers[pid] = (status, now)
            for old in [p for p, (_, when) in self.strangers.items() if now - when > STRANGER_KEPT]:
                del self.strangers[old]

    # ---- running ----

    def guard(self, handler: Callable[[int], None], value: int) -> None:
        """Run a handler; a bug in one container's handling is told, and the others go on."""
        try:
            handler(value)
        except Exception:
            import traceback

            self.complain("internal error: " + traceback.format_exc().replace("\n", " | "))

    def run(self, idle_left: Callable[[], float | None]) -> None:
        """Until told to leave: wait for the next event, timer, or the end of idleness (`idle_left` seconds)."""
        while not self.quit:
            timeout = self._timeout()
            idle = idle_left()
            if self.quit:
                break
            if idle is not None:
                timeout = idle if timeout is None else min(timeout, idle)
            try:
                ready = self.poller.poll(-1 if timeout is None else timeout + 0.001)
            except InterruptedError:
                continue
            for fd, mask in ready:
                handler = self.handlers.get(fd)
                if handler is not None:
                    self.guard(handler, mask)
            for timer in self._due():
                self.guard(_call(timer.callback), 0)
            self.reap()
