"""The monitor's side of ROOT/monitor.sock (the protocol is in oci.monitor.proto).

Every connection is non-blocking: a request is read whole, handed to its operation, and the
answer goes out when the operation has one (at once, or when a container has ended). A client
that reads too slowly never blocks the monitor: what it has not taken is kept up to 1 MiB of
container output, beyond that it misses output (counted).
"""

from __future__ import annotations

import errno
import os
import select

from oci.errors import InvalidInput, OciError
from oci.monitor import proto

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

    from oci.monitor.loop import Loop

READ_SIZE = 1 << 16
SEND_MAX = 1 << 20


class Conn:
    """One client: a request, its answer, then frames if it attached."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.fd: int = sock.fileno()
        self.inbuf = b""
        self.out = bytearray()
        self.asked = False
        self.closing = False
        self.frames: proto.Frames | None = None  # attached: frames from the client go to on_frame
        self.on_frame: Callable[[bytes, bytes], None] | None = None
        self.on_close: Callable[[], None] | None = None
        self.missed = 0


class Server:
    """Accepts clients and runs their requests through `operations` (name -> handler(conn, request))."""

    def __init__(self, loop: Loop, operations: dict[str, Callable[[Conn, dict[str, Any]], None]],
                 complain: Callable[[str], None]) -> None:
        self.loop, self.operations, self.complain = loop, operations, complain
        self.conns: dict[int, Conn] = {}
        self.listener: Any = None
        self.path = ""

    def open(self, path: str) -> None:
        self.path = path
        self.listener = proto.listen(path)
        self.listener.setblocking(False)
        self.loop.watch(self.listener.fileno(), self._on_listener)

    def close(self) -> None:
        if self.listener is not None:
            self.loop.unwatch(self.listener.fileno())
            self.listener.close()
            self.listener = None
            try:
                os.unlink(self.path)
            except OSError:
                pass

    def _on_listener(self, _mask: int) -> None:
        while self.listener is not None:
            try:
                sock, _ = self.listener.accept()
            except BlockingIOError:
                return
            except OSError as err:
                if err.errno in (errno.EMFILE, errno.ENFILE):
                    self.complain("out of file descriptors: a client was refused")
                return
            if proto.peer_uid(sock) not in (0, os.getuid()):
                sock.close()
                continue
            sock.setblocking(False)
            conn = Conn(sock)
            self.conns[conn.fd] = conn
            self.loop.watch(conn.fd, self._handler(conn))

    def _handler(self, conn: Conn) -> Callable[[int], None]:
        def handler(mask: int) -> None:
            self._on_conn(conn, mask)

        return handler

    def _on_conn(self, conn: Conn, mask: int) -> None:
        if mask & select.EPOLLOUT:
            self.flush(conn)
        if not mask & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR) or conn.fd not in self.conns:
            return
        try:
            data = conn.sock.recv(READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.drop(conn)
            return
        if conn.frames is not None:
            try:
                frames = conn.frames.feed(data)
            except ValueError:
                self.drop(conn)
                return
            for kind, payload in frames:
                if conn.on_frame is not None:
                    conn.on_frame(kind, payload)
            return
        if conn.asked:
            return  # one request per connection
        conn.inbuf += data
        if b"\n" not in conn.inbuf:
            if len(conn.inbuf) > proto.MAX_LINE:
                self.answer(conn, {"ok": False, "error": "request too long", "code": 2})
            return
        conn.asked = True
        self._dispatch(conn, conn.inbuf.split(b"\n", 1)[0])

    def _dispatch(self, conn: Conn, line: bytes) -> None:
        try:
            doc = proto.decode(line)
            operation = self.operations.get(str(doc.get("op"))) if isinstance(doc, dict) else None
            if operation is None:
                raise InvalidInput(f"request: unknown operation {doc.get('op') if isinstance(doc, dict) else doc!r}")
            operation(conn, doc)
        except ValueError as err:
            self.answer(conn, {"ok": False, "error": f"request: not JSON: {err}", "code": 2})
        except OciError as err:
            self.answer(conn, proto.error_answer(err))
        except Exception as err:
            import traceback

            self.complain("internal error: " + traceback.format_exc().replace("\n", " | "))
            self.answer(conn, proto.error_answer(err))

    def send(self, conn: Conn, data: bytes, droppable: bool = False) -> None:
        if conn.fd not in self.conns:
            return
        if droppable and len(conn.out) > SEND_MAX:
            conn.missed += len(data)
            return
        conn.out += data
        self.flush(conn)

    def flush(self, conn: Conn) -> None:
        if conn.fd not in self.conns:
            return
        try:
            while conn.out:
                del conn.out[:conn.sock.send(conn.out)]
        except BlockingIOError:
            pass
        except OSError:
            self.drop(conn)
            return
        self.loop.modify(conn.fd, select.EPOLLIN | (select.EPOLLOUT if conn.out else 0))
        if conn.closing and not conn.out:
            self.drop(conn)

    def answer(self, conn: Conn, doc: dict[str, Any], keep: bool = False) -> None:
        """Send an answer; the connection closes once it is out, unless it goes on (attach)."""
        conn.closing = not keep
        self.send(conn, proto.encode(doc))

    def attach(self, conn: Conn, on_frame: Callable[[bytes, bytes], None], on_close: Callable[[], None]) -> None:
        """From now on the client sends frames."""
        conn.frames = proto.Frames()
        conn.on_frame, conn.on_close = on_frame, on_close

    def end(self, conn: Conn, frame: bytes = b"") -> None:
        """Send a last frame, then close once it is out."""
        conn.on_close = None
        conn.closing = True
        self.send(conn, frame)
        self.flush(conn)

    def drop(self, conn: Conn) -> None:
        if self.conns.pop(conn.fd, None) is None:
            return
        self.loop.unwatch(conn.fd)
        on_close, conn.on_close = conn.on_close, None
        if on_close is not None:
            on_close()
        conn.sock.close()
