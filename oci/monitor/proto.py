"""How commands talk to the monitor: AF_UNIX stream connections on ROOT/monitor.sock.

A client sends one request, a JSON object on one line ({"op": "run", ...}); the monitor
answers with one JSON line: {"ok": true, ...} or {"ok": false, "error": MESSAGE, "code":
EXIT_CODE} (the exit codes of oci.errors). `wait` and `stop` answer when the container has
exited. After the answer to `attach`, both sides speak frames: a kind byte, a 4-byte
big-endian length, the payload.

    client -> monitor: i (stdin bytes), w (window size: rows, cols as two 2-byte numbers),
                       k (a signal number, as text, for the container's init)
    monitor -> client: o (stdout bytes), e (stderr bytes), x (the container exited: its code as text)

The socket is mode 0600 in a 0700 folder, and the monitor serves only its own uid and root.
Paths longer than sun_path holds are reached through /proc/self/fd/N/NAME.
"""

from __future__ import annotations

import _socket
import os
from _struct import Struct  # struct's C half: one module fewer on `oci-mon run`'s path

from oci import errors
from oci.errors import OciError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAX_LINE = 1 << 20
SUN_PATH_MAX = 107
HEADER = Struct(">cI")


class _Reachable:
    """A socket path usable in connect/bind: itself, or /proc/self/fd/N/NAME while its folder is held open."""

    def __init__(self, path: str) -> None:
        self.fd = -1
        self.path = path
        if len(path.encode()) > SUN_PATH_MAX:
            folder, name = os.path.split(path)
            self.fd = os.open(folder, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            self.path = f"/proc/self/fd/{self.fd}/{name}"

    def __enter__(self) -> str:
        return self.path

    def __exit__(self, *exc: object) -> None:
        if self.fd >= 0:
            os.close(self.fd)


def connect(path: str) -> _socket.socket:
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        with _Reachable(path) as where:
            sock.connect(where)
    except BaseException:
        sock.close()
        raise
    return sock


def listen(path: str, mode: int = 0o600) -> Any:
    """A listening socket.socket at `path` (a stale one is replaced), mode `mode`."""
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        old = os.umask(0o777 & ~mode)
        try:
            with _Reachable(path) as where:
                sock.bind(where)
        finally:
            os.umask(old)
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    return sock


def peer_uid(sock: Any) -> int:
    creds = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
    return int(Struct("3i").unpack(creds)[1])


def encode(doc: Any) -> bytes:
    from oci.jsonout import dumps

    return (dumps(doc, separators=(",", ":")) + "\n").encode()


class _Context:
    """What _json's C scanner reads from json.JSONDecoder: the default settings."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict[str, str] = {}

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}[name]


_scan: Any = None
_SPACE = " \t\n\r"


def decode(data: bytes | str) -> Any:
    """json.loads(data), through the C scanner json uses, without importing json (it imports re, and re
    enum: ~6 ms that `oci-mon run` would pay on every call). ValueError if `data` is not one JSON value."""
    global _scan
    text = data.decode() if isinstance(data, bytes) else data
    if _scan is None:
        try:
            from _json import make_scanner
        except ImportError:  # another Python: the stdlib's public way
            import json

            return json.loads(text)
        _scan = make_scanner(_Context())  # type: ignore[arg-type]
    start = len(text) - len(text.lstrip(_SPACE))
    try:
        value, end = _scan(text, start)
    except Exception:  # StopIteration, or an error the scanner reports through json.decoder: let json say it
        import json

        return json.loads(text)
    finally:
        _Context.memo.clear()
    if text[end:].strip(_SPACE):
        raise ValueError(f"extra data at character {end}")
    return value


def frame(kind: bytes, payload: bytes = b"") -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


class Frames:
    """Splits a byte stream into (kind, payload) frames."""

    def __init__(self) -> None:
        self.buffer = b""

    def feed(self, data: bytes) -> list[tuple[bytes, bytes]]:
        self.buffer += data
        found = []
        while len(self.buffer) >= HEADER.size:
            kind, length = HEADER.unpack_from(self.buffer)
            if length > MAX_LINE:
                raise ValueError("frame too long")
            end = HEADER.size + length
            if len(self.buffer) < end:
                break
            found.append((kind, self.buffer[HEADER.size:end]))
            self.buffer = self.buffer[end:]
        return found


class Channel:
    """The client's side of one connection: a request, its answer, then (for attach) frames."""

    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def close(self) -> None:
        self.sock.close()

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, doc: Any) -> None:
        self.sock.sendall(encode(doc))

    def answer(self) -> dict[str, Any]:
        """The monitor's answer; an OciError carrying its exit code if it refused."""
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise MonitorGone("the monitor closed the connection without an answer")
            self.buffer += chunk
            if len(self.buffer) > MAX_LINE:
                raise OciError("the monitor's answer is too long")
        line, _, self.buffer = self.buffer.partition(b"\n")
        doc = decode(line)
        if not isinstance(doc, dict):
            raise OciError("the monitor's answer is not a JSON object")
        if not doc.get("ok"):
            raise error_from(doc)
        return doc

    def request(self, doc: Any) -> dict[str, Any]:
        self.send(doc)
        return self.answer()


class MonitorGone(OciError):
    """The monitor went away (or was not there) before it answered."""


def error_from(doc: dict[str, Any]) -> OciError:
    """The OciError subclass whose exit code the monitor sent."""
    code = doc.get("code", 1)
    message = str(doc.get("error") or "the monitor refused the request")
    for cls in (errors.UsageError, errors.NotFound, errors.IntegrityError, errors.Conflict, errors.Unsupported):
        if cls.exit_code == code:
            return cls(message)
    return OciError(message)


def error_answer(err: BaseException) -> dict[str, Any]:
    if isinstance(err, OciError):
        return {"ok": False, "error": "; ".join(err.lines()), "code": err.exit_code}
    return {"ok": False, "error": f"{type(err).__name__}: {err}", "code": 1}
