"""The monitor as a process: serve a state root until told to leave (`serve`), in the background
(`daemonize`), and the entry point commands start (`main`: oci.monitor.client starts
`python -S -c ...` with it). Here the monitor (oci.monitor.daemon) meets the requests it carries out
(oci.monitor.operations).
"""

from __future__ import annotations

import os
import sys
from typing import Callable

from oci.monitor import operations
from oci.monitor.daemon import IDLE_TIMEOUT, Monitor
from oci.monitor.paths import Root


def serve(root: Root, idle_timeout: float | None, ready: Callable[[str], None] | None = None,
          echo: bool = False) -> None:
    """Run a monitor for `root` until it is told to leave (or is idle for `idle_timeout` seconds);
    `echo`: its messages on stderr too (in the foreground, for an init system's journal)."""
    monitor = Monitor(root, operations.bind, idle_timeout, echo)
    try:
        monitor.open()
    except BaseException as err:
        if ready is not None:
            if isinstance(err, OSError):
                reason = f"{err.filename}: {err.strerror}" if err.filename else str(err.strerror or err)
            else:
                reason = str(err) or type(err).__name__
            ready(f"error: {reason}")
        raise
    if ready is not None:
        ready("ready")
    monitor.serve()


def daemonize(root: Root, idle_timeout: float | None) -> int:
    """Start a monitor in the background (new session, stdio on /dev/null, not a session leader);
    return once it listens: 0, or 1 with its complaint on stderr."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(reader)
            os.setsid()
            if os.fork() != 0:
                os._exit(0)
            os.chdir("/")
            os.umask(0o022)
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            if null > 2:
                os.close(null)
            os.closerange(3, writer)
            os.closerange(writer + 1, 1 << 16)

            def ready(message: str) -> None:
                try:
                    os.write(writer, message.encode())
                finally:
                    os.close(writer)

            serve(root, idle_timeout, ready)
            os._exit(0)
        except BaseException:
            os._exit(1)
    os.close(writer)
    os.waitpid(pid, 0)
    chunks = []
    while True:
        chunk = os.read(reader, 4096)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(reader)
    message = b"".join(chunks).decode(errors="replace")
    if message == "ready":
        return 0

    sys.stderr.write(f"{message.removeprefix('error: ') or 'it died'}\n")
    return 1


def main(argv: list[str]) -> int:
    """`python -S -c ... ROOT [--idle-timeout S] [--daemonize]`: how commands start a monitor."""
    root = Root(argv[0])
    idle: float | None = IDLE_TIMEOUT
    if "--idle-timeout" in argv:
        value = float(argv[argv.index("--idle-timeout") + 1])
        idle = None if value <= 0 else value
    if "--daemonize" in argv:
        return daemonize(root, idle)
    serve(root, idle)
    return 0
