"""Every container's output in one log, `containers/ID/ctr.log`, in the CRI format oci-mon writes
(oci.monitor.crilog): oci-mon logs what detached containers print, the front what a container
run in the foreground prints while it shows it (`Tee`), so `logs` reads one file whoever ran it.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

from oci.errors import InvalidInput, OciError

from . import status
from .engine import Engine

CHUNK = 1 << 16


class Tee:
    """The container's stdout and stderr as pipes, copied to ours and to its log while it runs."""

    def __init__(self, log_path: str) -> None:
        from oci.monitor.crilog import LogWriter

        self.log = LogWriter(log_path)
        self.lock = threading.Lock()
        self.pipes = [os.pipe(), os.pipe()]
        self.saved: list[int] = []
        self.released = False
        self.threads: list[threading.Thread] = []

    def __enter__(self) -> Tee:
        """Our fds 1 and 2 are the pipes until `release`: a runtime made now inherits them."""
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        self.saved = [os.dup(1), os.dup(2)]
        for fd, (_, writer) in zip((1, 2), self.pipes, strict=True):
            os.dup2(writer, fd)
        return self

    def release(self) -> None:
        """Our own stdout and stderr back, the write ends closed, the copying started."""
        if self.released or not self.saved:
            return
        self.released = True
        for fd, saved in zip((1, 2), self.saved, strict=True):
            os.dup2(saved, fd)
        for _, writer in self.pipes:
            os.close(writer)
        for (reader, _), target, stream in zip(self.pipes, self.saved, ("stdout", "stderr"), strict=True):
            thread = threading.Thread(target=self._copy, args=(reader, target, stream), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _copy(self, reader: int, target: int, stream: str) -> None:
        while True:
            try:
                data = os.read(reader, CHUNK)
            except OSError:
                data = b""
            if not data:
                break
            view = memoryview(data)
            try:
                while view:
                    view = view[os.write(target, view):]
            except OSError:
                pass  # our terminal went away: the log still gets it
            with self.lock:
                self.log.write(stream, data)
        os.close(reader)

    def __exit__(self, *exc: object) -> None:
        self.release()
        for thread in self.threads:
            thread.join(timeout=5)  # a process the container left behind may hold the pipe: stop waiting
        for saved in self.saved:
            os.close(saved)
        self.saved = []
        self.log.close()


def show(engine: Engine, cid: str, *, follow: bool, since: str | None, until: str | None, tail: str,
         timestamps: bool, monitor: Any = None) -> int:
    """`logs`: the container's log as it printed it (stdout to stdout, stderr to stderr)."""

    from oci.monitor import crilog, times
    from oci.monitor.follow import RotatedFile


    lines = None
    if tail != "all":
        if not tail.isdigit():
            raise InvalidInput(f"--tail: {tail!r} is not a number")
        lines = int(tail)
    start = times.parse_since(since) if since else None
    stop = times.parse_since(until, "--until") if until else None
    printer = crilog.Printer(1, 2, timestamps)
    source = RotatedFile(engine.containers.log_path(cid))
    try:
        for record in crilog.select(crilog.records(source.history()), start, stop, lines):
            printer.show(record)
        while follow:
            try:
                live = status.current(engine, engine.containers.load(cid), monitor) in (
                    "running", "paused", "restarting", "created")
            except OciError:  # removed meanwhile
                live = False
            for record in crilog.records(source.poll()):
                if stop is not None and crilog.time_ns(record) >= stop:
                    return 0
                printer.show(record)
            if not live:
                for record in crilog.records(source.poll()):
                    printer.show(record)
                return 0
            time.sleep(0.1)
        return 0
    finally:
        source.close()
