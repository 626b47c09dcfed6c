"""The sync channel between the runtime and the container's init: marshal'd messages on a SEQPACKET socket.

Both ends are oci-run (the init is a fork of the runtime, before its exec), so the messages
are marshal'd dicts rather than JSON: json (and the re it imports) would cost every
create more than the messages are worth. _socket, not socket: see lifecycle.
"""

from __future__ import annotations

import _socket
import marshal

from oci.errors import OciError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAX_MESSAGE = 1 << 20
# A SEQPACKET message must fit the socket's send buffer (net.core.wmem_max, ~208 KiB): a larger
# one (the state of a config with big annotations) goes as a header, `\0` and its length, then
# pieces of at most CHUNK bytes.
CHUNK = 1 << 16
_LARGE = b"\0"


class InitError(OciError):
    """The container's init reported a failure, or went away before finishing its part."""


class Channel:
    """One end of the socket pair: `send` a dict, `recv` the next one (raising on an init error)."""

    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock

    @classmethod
    def pair(cls) -> tuple[Channel, Channel]:
        a, b = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
        return cls(a), cls(b)

    def send(self, kind: str, **fields: Any) -> None:
        data = marshal.dumps({"kind": kind, **fields})
        if len(data) <= CHUNK:
            self.sock.send(data)
            return
        self.sock.send(_LARGE + len(data).to_bytes(8, "little"))
        view = memoryview(data)
        for start in range(0, len(data), CHUNK):
            self.sock.send(view[start:start + CHUNK])

    def recv(self, expect: str | None = None) -> dict[str, Any]:
        data = self.sock.recv(MAX_MESSAGE)
        if not data:
            raise InitError("container init exited before finishing its setup")
        if data[:1] == _LARGE:
            size = int.from_bytes(data[1:9], "little")
            pieces, got = [], 0
            while got < size:
                piece = self.sock.recv(CHUNK)
                if not piece:
                    raise InitError("container init exited before finishing its setup")
                pieces.append(piece)
                got += len(piece)
            data = b"".join(pieces)
        message = self._load(data)
        if message["kind"] == "error":
            raise InitError(message["message"], source=None)
        if expect is not None and message["kind"] != expect:
            raise InitError(f"container init: expected {expect}, got {message['kind']}")
        return message

    @staticmethod
    def _load(data: bytes) -> dict[str, Any]:
        try:
            message = marshal.loads(data)
        except (EOFError, ValueError, TypeError):
            message = None
        if type(message) is not dict or type(message.get("kind")) is not str:
            raise InitError("container init: unreadable message on the sync channel")
        return message

    @staticmethod
    def decode(data: bytes) -> str:
        """The text of an error message read raw from the channel."""
        try:
            return str(Channel._load(data).get("message", ""))
        except InitError:
            return data.decode(errors="replace")

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()
