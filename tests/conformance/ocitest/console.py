"""The receiving end of runc's --console-socket: the pty master arrives over SCM_RIGHTS."""

from __future__ import annotations

import os
import select
import socket
import threading
import time
from pathlib import Path


class ConsoleSocket:
    """Listen at PATH, accept the runtime's connection, keep the master fd it sends."""

    def __init__(self, path: Path):
        self.path = path
        self.master: int | None = None
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(1)
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        conn, _ = self._server.accept()
        with conn:
            _, fds, _, _ = socket.recv_fds(conn, 4096, 1)
            self.master = fds[0] if fds else None

    def wait_master(self, timeout: float = 10) -> int:
        self._thread.join(timeout)
        if self.master is None:
            raise AssertionError("the runtime sent no pty master on the console socket")
        return self.master

    def read_until_closed(self, timeout: float = 10) -> str:
        """Everything the container writes to its terminal, until the last slave fd closes."""
        master = self.wait_master()
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if not ready:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: no slave left
                break
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks).decode(errors="replace").replace("\r\n", "\n")

    def close(self) -> None:
        self._server.close()
        if self.master is not None:
            os.close(self.master)
            self.master = None
