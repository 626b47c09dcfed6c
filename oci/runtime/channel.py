"""The sync channel between the runtime and the container's init: JSON messages on a SEQPACKET socket."""

from __future__ import annotations

import json
import socket

from oci.errors import OciError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class InitError(OciError):
    """The container's init reported a failure, or went away before finishing its part."""


class Channel:
    """One end of the socket pair: `send` a dict, `recv` the next one (raising on an init error)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    @classmethod
    def pair(cls) -> tuple[Channel, Channel]:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        return cls(a), cls(b)

    def send(self, kind: str, **fields: Any) -> None:
        self.sock.send(json.dumps({"kind": kind, **fields}).encode())

    def recv(self, expect: str | None = None) -> dict[str, Any]:
        data = self.sock.recv(1 << 20)
        if not data:
            raise InitError("container init exited before finishing its setup")
        message = json.loads(data)
        if message["kind"] == "error":
            raise InitError(message["message"], source=None)
        if expect is not None and message["kind"] != expect:
            raise InitError(f"container init: expected {expect}, got {message['kind']}")
        return message

    @staticmethod
    def decode(data: bytes) -> str:
        """The text of an error message read raw from the channel."""
        try:
            return json.loads(data).get("message", "")
        except ValueError:
            return data.decode(errors="replace")

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()
