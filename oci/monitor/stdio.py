"""A container's stdio as the monitor holds it.

* stdout and stderr are FIFOs in the container's folder. The runtime hands the container
  read-write ends: while it holds them a reader exists, so its writes never meet a closed
  pipe (no SIGPIPE) even when no monitor runs; output then waits in the pipe (64 KiB) and a
  monitor that comes back opens the FIFOs by name and reads on. The monitor's own ends are
  non-blocking readers; it holds no writer, so they end (EOF) when the container has ended.
* With a terminal, the runtime sends the pty master over a console socket the monitor
  listens on (runc's --console-socket protocol); the master carries the container's output
  (logged as stdout) and takes attach input and window sizes.
* With -i and no terminal, stdin is a pipe whose writing end the monitor keeps for attach.
"""

from __future__ import annotations

import os
import socket
import stat
import struct

from oci.monitor import proto
from oci.monitor.crilog import STREAMS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

    from oci.monitor.loop import Loop

READ_SIZE = 1 << 16
PENDING_MAX = 1 << 20  # input for the container that did not fit yet; beyond this it is dropped


class ContainerIO:
    """The descriptors of one container's stdio, watched by the loop; output goes to `output(stream, data)`."""

    def __init__(self, loop: Loop, folder: str, output: Callable[[str, bytes], None],
                 complain: Callable[[str], None]) -> None:
        self.loop, self.folder, self.output, self.complain = loop, folder, output, complain
        self.streams: dict[int, str] = {}  # fd -> stdout/stderr (FIFO readers, or the pty master as stdout)
        self.master = -1
        self.stdin = -1
        self.pending = b""
        self.console: socket.socket | None = None
        self.console_path = ""
        self.got_terminal = False  # the runtime sent the pty master of this run

    # ---- before the runtime runs ----

    def open_fifos(self) -> tuple[int, int]:
        """Readers for stdout and stderr, watched; the container's read-write ends (for the runtime), returned."""
        writers = []
        for stream in STREAMS:
            path = os.path.join(self.folder, stream)
            try:
                if not stat.S_ISFIFO(os.lstat(path).st_mode):
                    os.unlink(path)
                    raise FileNotFoundError
            except FileNotFoundError:
                os.mkfifo(path, 0o600)
            self._watch(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC), stream)
            writers.append(os.open(path, os.O_RDWR | os.O_CLOEXEC))
        return writers[0], writers[1]

    def reopen_fifos(self) -> None:
        """Read the FIFOs of a container another monitor started (what it wrote meanwhile waits in them)."""
        for stream in STREAMS:
            try:
                self._watch(os.open(os.path.join(self.folder, stream), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC),
                            stream)
            except OSError:
                continue

    def open_stdin(self) -> int:
        """A pipe for stdin: its reading end (for the runtime) returned, its writing end kept for attach."""
        reader, self.stdin = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(self.stdin, False)
        return reader

    def listen_console(self, path: str) -> str:
        """Listen where the runtime will send the pty master; the path it is given (sun_path is short: a long
        one is replaced by a private folder in /tmp)."""
        self.got_terminal = False
        if len(path.encode()) > proto.SUN_PATH_MAX:
            folder = f"/tmp/oci-mon-{os.urandom(6).hex()}"
            os.mkdir(folder, 0o700)
            path = os.path.join(folder, "console.sock")
        self.console = proto.listen(path)
        self.console.setblocking(False)
        self.console_path = path
        self.loop.watch(self.console.fileno(), lambda _mask: self.accept_console())
        return path

    def accept_console(self) -> None:
        if self.console is None:
            return
        try:
            conn, _ = self.console.accept()
        except BlockingIOError:
            return
        try:
            conn.settimeout(5)
            _, fds, _, _ = socket.recv_fds(conn, 4096, 4)
        except OSError as err:
            self.complain(f"console socket: {err}")
            fds = []
        finally:
            conn.close()
        for extra in fds[1:]:
            os.close(extra)
        if fds:
            if self.master >= 0:
                self.close_stream(self.master)
            self.master = fds[0]
            self.got_terminal = True
            os.set_inheritable(self.master, False)
            os.set_blocking(self.master, False)
            self._watch(self.master, "stdout")
            self.close_console()

    def close_console(self) -> None:
        if self.console is None:
            return
        self.loop.unwatch(self.console.fileno())
        self.console.close()
        self.console = None
        try:
            os.unlink(self.console_path)
            if self.console_path.startswith("/tmp/oci-mon-"):
                os.rmdir(os.path.dirname(self.console_path))
        except OSError:
            pass

    # ---- while it runs ----

    def _watch(self, fd: int, stream: str) -> None:
        self.streams[fd] = stream
        self.loop.watch(fd, lambda _mask: self._on_readable(fd))

    def _on_readable(self, fd: int) -> None:
        stream = self.streams.get(fd)
        for _ in range(16):  # then the other containers have their turn
            if stream is None:
                return
            try:
                data = os.read(fd, READ_SIZE)
            except BlockingIOError:
                return
            except OSError:  # EIO: the pty's other side is closed
                data = b""
            if not data:
                self.close_stream(fd)
                return
            self.output(stream, data)
            if len(data) < READ_SIZE:
                return

    def write_input(self, tty: bool, data: bytes) -> None:
        """Attach input for the container (the pty master, or its stdin pipe); what does not fit waits."""
        target = self.master if tty else self.stdin
        if target < 0:
            return
        pending = self.pending + data
        try:
            written = os.write(target, pending) if pending else 0
        except BlockingIOError:
            written = 0
        except OSError:
            return
        self.pending = pending[written:][:PENDING_MAX]

    def resize(self, rows: int, cols: int) -> None:
        """The terminal's window size (the kernel tells the container's foreground process group)."""
        if self.master < 0:
            return
        import fcntl
        import termios

        try:
            fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        except OSError:
            pass

    # ---- at its end ----

    def drain(self) -> None:
        """Read what the container wrote before it ended; FIFOs then close (no writer is left)."""
        for fd in list(self.streams):
            for _ in range(1024):
                stream = self.streams.get(fd)
                if stream is None:
                    break
                try:
                    data = os.read(fd, READ_SIZE)
                except BlockingIOError:
                    break
                except OSError:
                    data = b""
                if not data:
                    self.close_stream(fd)
                    break
                self.output(stream, data)

    def close_stream(self, fd: int) -> None:
        self.loop.unwatch(fd)
        self.streams.pop(fd, None)
        if fd == self.master:
            self.master = -1
        os.close(fd)

    def close(self) -> None:
        self.close_console()
        for fd in list(self.streams):
            self.close_stream(fd)
        if self.stdin >= 0:
            os.close(self.stdin)
            self.stdin = -1
            self.pending = b""
