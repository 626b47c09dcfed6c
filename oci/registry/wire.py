"""HTTP/1.1 on one socket: a request out, then the response's status, headers and body in.

Only what a registry client needs: requests with a bytes or file body of known length,
responses framed by Content-Length, chunked transfer coding or the end of the connection,
and keep-alive (a connection serves the next request only once a response was read to its
end). The server is not trusted: lines, header counts and chunk-size lines are capped, a
malformed status line, header or length is a `ProtocolError`, and a body that ends before
its announced length is an `IncompleteBody`. Both are OSErrors, so callers treat them as
the connection failures they are.

Pure Python on `_socket`, read through an io.BufferedReader; `socket` and `ssl` come in
only when the caller asks for TLS. (The standard library's http.client imports the email
package to parse headers, and `socket` imports enum and selectors: together more than a
warm oci-fetch's whole network exchange.)
"""

from __future__ import annotations

import _socket
import io

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl
    from typing import Any, BinaryIO

    from oci.digest import Reader

    from .proxy import Proxy

MAX_LINE = 16 << 10  # status line, one header line, one chunk-size line
MAX_HEADERS = 128  # header lines in one response (and in trailers)
MAX_INTERIM = 8  # 1xx answers before the final one
SEND_BLOCK = 1 << 20
RECV_BUFFER = 1 << 16


class ProtocolError(OSError):
    """The server's answer is not HTTP/1.1 as RFC 9112 frames it."""


class IncompleteBody(ProtocolError):
    """The connection ended before the body did."""


class ProxyRefused(ValueError):
    """The proxy wants credentials it was not given, or other ones (407): asking again does not help."""


class RemoteClosed(ConnectionResetError):
    """The server closed the connection without answering (a kept-alive connection it dropped)."""


class Headers:
    """Response headers: looked up by case-insensitive name; repeated names keep every value."""

    __slots__ = ("_fields",)

    def __init__(self, fields: list[tuple[str, str]]) -> None:
        self._fields = fields

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of `name`, or `default`."""
        name = name.lower()
        for key, value in self._fields:
            if key == name:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        name = name.lower()
        return [value for key, value in self._fields if key == name]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __len__(self) -> int:
        return len(self._fields)


class Response:
    """One response: its head read on construction, its body read by the caller."""

    def __init__(self, fp: io.BufferedReader[Any], method: str) -> None:
        self._fp: io.BufferedReader[Any] | None = fp
        for _ in range(MAX_INTERIM + 1):  # interim 1xx answers are skipped, a few of them
            version, self.status, self.reason = _status_line(fp)
            self.headers = Headers(_fields(fp))
            if not 100 <= self.status < 200:
                break
        else:
            raise ProtocolError(f"more than {MAX_INTERIM} interim (1xx) answers")
        self.will_close = version == "HTTP/1.0" or "close" in _tokens(self.headers.get_all("connection"))
        self._chunked = False
        self._chunk_left = 0
        self._failure: OSError | None = None
        self.length: int | None = None  # body bytes still to come, when the framing says
        if method == "HEAD" or self.status in (204, 304) or (method == "CONNECT" and 200 <= self.status < 300):
            self.length = 0
        elif "transfer-encoding" in self.headers:
            codings = _tokens(self.headers.get_all("transfer-encoding"))
            self._chunked = bool(codings) and codings[-1] == "chunked"
            # With Content-Length too, Transfer-Encoding wins (RFC 9112 6.3), and a message
            # framed both ways is suspect: the connection is not used again.
            self.will_close = True if "content-length" in self.headers or not self._chunked else self.will_close
        elif "content-length" in self.headers:
            self.length = _content_length(self.headers.get_all("content-length"))
        else:
            self.will_close = True  # the body ends with the connection
        if self.length == 0:
            self._fp = None

    def isclosed(self) -> bool:
        """True once the body was read to its end (or `close` was called)."""
        return self._fp is None

    def read(self, n: int | None = None) -> bytes:
        """Up to `n` bytes of the body (all of it when `n` is None); b'' at its end."""
        if n is None or n < 0:
            parts = []
            while data := self.read1(SEND_BLOCK):
                parts.append(data)
            return b"".join(parts)
        parts, want = [], n
        while want > 0 and (data := self.read1(want)):
            parts.append(data)
            want -= len(data)
        return b"".join(parts)

    def read1(self, n: int = SEND_BLOCK) -> bytes:
        """At most `n` bytes from one read of the connection; b'' at the body's end."""
        fp = self._fp
        if fp is None or n == 0:
            return b""
        if self._chunked:
            if self._chunk_left == 0:
                self._chunk_left = _chunk_size(fp)
                if self._chunk_left == 0:
                    _fields(fp)  # trailers, ignored
                    self._fp = None
                    return b""
            data = fp.read1(min(n, self._chunk_left))
            if not data:
                raise self._incomplete("in a chunk")
            self._chunk_left -= len(data)
            if self._chunk_left == 0:
                _chunk_end(fp)
            return data
        if self.length is None:  # to the end of the connection
            data = fp.read1(n)
            if not data:
                self._fp = None
            return data
        data = fp.read1(min(n, self.length))
        if not data:
            raise self._incomplete(f"with {self.length} bytes of the body missing")
        self.length -= len(data)
        if self.length == 0:
            self._fp = None
        return data

    def readinto(self, buffer: memoryview | bytearray) -> int:
        """Fill `buffer` as far as the body goes, in as many reads of the connection as that takes
        (a TLS record is 16 KiB at most): 0 at the body's end."""
        fp = self._fp
        if fp is None or not len(buffer):
            return 0
        if self._chunked:
            data = self.read1(len(buffer))
            buffer[: len(data)] = data
            return len(data)
        if self._failure is not None:
            raise self._failure
        view = memoryview(buffer)
        if self.length is not None:
            view = view[: self.length]
        count = 0
        while count < len(view):
            try:
                got = fp.readinto1(view[count:])
            except OSError as err:
                if not count:
                    raise
                self._failure = err  # what arrived before the failure is returned; the next call fails
                break
            if not got:
                break
            count += got
        if self.length is None:  # to the end of the connection
            if not count:
                self._fp = None
            return count
        if not count:
            raise self._incomplete(f"with {self.length} bytes of the body missing")
        self.length -= count
        if self.length == 0:
            self._fp = None
        return count

    def close(self) -> None:
        """Stop reading; an unread rest of the body makes the connection unusable."""
        if self._fp is not None:
            self._fp = None
            self.will_close = True

    def _incomplete(self, where: str) -> IncompleteBody:
        self._fp = None
        self.will_close = True
        return IncompleteBody(f"connection closed {where}")


class Connection:
    """A client connection to `host:port`, opened by the first request; `tls` wraps it. Through a
    `proxy`, TLS goes through a CONNECT tunnel and plain HTTP asks the proxy for absolute URLs."""

    def __init__(self, host: str, port: int, timeout: float | None, tls: ssl.SSLContext | None = None,
                 proxy: Proxy | None = None) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.tls = tls
        self.proxy = proxy
        self.sock: _socket.socket | ssl.SSLSocket | None = None
        self._fp: io.BufferedReader[Any] | None = None
        self._method = ""
        self._host_header = f"[{host}]" if ":" in host else host
        if port != (443 if tls is not None else 80):
            self._host_header += f":{port}"

    def connect(self) -> None:
        if self.proxy is None:
            sock = _connect(self.host, self.port, self.timeout)
        else:
            sock = _connect(self.proxy.host, self.proxy.port, self.timeout)
            if self.tls is not None:
                try:
                    self._tunnel(sock)
                except BaseException:
                    sock.close()
                    raise
        if self.tls is not None:
            import socket

            try:
                # An ASCII name goes as bytes: ssl then needs no IDNA codec (stringprep, unicodedata).
                name = self.host.encode() if self.host.isascii() else self.host
                sock = self.tls.wrap_socket(socket.socket(fileno=sock.detach()), server_hostname=name)
            except BaseException:
                sock.close()
                raise
        self.sock = sock
        self._fp = io.BufferedReader(_Reader(sock), RECV_BUFFER)

    def _tunnel(self, sock: _socket.socket) -> None:
        """Ask the proxy for a tunnel to host:port (the TLS client speaks first: nothing is read ahead)."""
        lines = [f"CONNECT {self._host_header_with_port()} HTTP/1.1", f"Host: {self._host_header_with_port()}"]
        if self.proxy is not None and self.proxy.authorization:
            lines.append(f"Proxy-Authorization: {self.proxy.authorization}")
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        fp = io.BufferedReader(_Reader(sock), 1)  # byte by byte: the tunnel's first bytes stay unread
        answer = Response(fp, "CONNECT")
        if answer.status == 407:
            raise ProxyRefused("the proxy asks for credentials (407): give them in the proxy URL, "
                               "http://USER:PASSWORD@HOST:PORT")
        if not 200 <= answer.status < 300:
            raise ProtocolError(f"the proxy refused a tunnel to {self._host_header_with_port()}: "
                                f"HTTP {answer.status} {answer.reason}".rstrip())

    def _host_header_with_port(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def request(self, method: str, target: str, headers: dict[str, str], body: bytes | Reader | None = None
                ) -> None:
        """Send a request. A file body needs a Content-Length header; a bytes body gets one."""
        if any(c in target for c in " \r\n") or any(c in method for c in " \r\n"):
            raise ValueError(f"invalid request target {target!r}")
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self._host_header}", "Accept-Encoding: identity"]
        if self.proxy is not None and self.tls is None:  # the proxy forwards absolute URLs
            lines[0] = f"{method} http://{self._host_header}{target} HTTP/1.1"
            if self.proxy.authorization:
                lines.append(f"Proxy-Authorization: {self.proxy.authorization}")
        for name, value in headers.items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
                raise ValueError(f"invalid header {name!r}")
            lines.append(f"{name}: {value}")
        declared = {name.lower() for name in headers}
        if isinstance(body, bytes) and "content-length" not in declared:
            lines.append(f"Content-Length: {len(body)}")
        elif body is not None and not isinstance(body, bytes) and "content-length" not in declared:
            raise ValueError("a streamed request body needs a Content-Length header")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if self.sock is None:
            self.connect()
        sock = self.sock
        assert sock is not None
        self._method = method
        if body is None or isinstance(body, bytes):
            sock.sendall(head + body if body and len(body) <= SEND_BLOCK else head)
            if body and len(body) > SEND_BLOCK:
                sock.sendall(body)
            return
        sock.sendall(head)
        while block := body.read(SEND_BLOCK):
            sock.sendall(block)

    def getresponse(self) -> Response:
        """The response to the request sent last (its head read; its body for the caller)."""
        if self._fp is None:
            raise ProtocolError("no request was sent on this connection")
        return Response(self._fp, self._method)

    def close(self) -> None:
        fp, sock, self._fp, self.sock = self._fp, self.sock, None, None
        if fp is not None:
            fp.close()
        if sock is not None:
            sock.close()


class _Reader(io.RawIOBase):
    """A connected socket as a raw binary stream (what socket.makefile's SocketIO is)."""

    def __init__(self, sock: _socket.socket | ssl.SSLSocket) -> None:
        super().__init__()
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        return self._sock.recv_into(buffer)


def _connect(host: str, port: int, timeout: float | None) -> _socket.socket:
    """A TCP connection to the first address of `host` that answers (socket.create_connection)."""
    # An ASCII host name is handed over as bytes: resolving it then needs no IDNA codec.
    name = host.encode() if host.isascii() else host
    error: OSError | None = None
    for family, kind, proto, _, address in _socket.getaddrinfo(name, port, 0, _socket.SOCK_STREAM):
        sock = _socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            return sock
        except OSError as err:
            sock.close()
            error = err
    raise error or OSError(f"{host}: no address to connect to")


def _readline(fp: BinaryIO, what: str) -> bytes:
    line = fp.readline(MAX_LINE + 1)
    if len(line) > MAX_LINE:
        raise ProtocolError(f"{what} longer than {MAX_LINE} bytes")
    return line


def _status_line(fp: BinaryIO) -> tuple[str, int, str]:
    line = _readline(fp, "status line")
    if not line:
        raise RemoteClosed("the server closed the connection without answering")
    if not line.endswith(b"\n"):
        raise IncompleteBody("connection closed in the status line")
    parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    version, code = parts[0], parts[1] if len(parts) > 1 else ""
    if version not in ("HTTP/1.1", "HTTP/1.0") or len(code) != 3 or not code.isdigit() or code < "100":
        raise ProtocolError(f"invalid status line {line[:80]!r}")
    return version, int(code), parts[2] if len(parts) > 2 else ""


def _fields(fp: BinaryIO) -> list[tuple[str, str]]:
    """Header (or trailer) lines up to the empty line, as (lower-case name, value)."""
    fields: list[tuple[str, str]] = []
    while True:
        line = _readline(fp, "header line")
        if line in (b"\r\n", b"\n"):
            return fields
        if not line.endswith(b"\n"):
            raise IncompleteBody("connection closed in the response header")
        if len(fields) == MAX_HEADERS:
            raise ProtocolError(f"more than {MAX_HEADERS} header lines")
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon or not name or name != name.strip() or " " in name or "\t" in name:
            raise ProtocolError(f"invalid header line {line[:80]!r}")  # also folded (obsolete) lines
        fields.append((name.lower(), value.strip(" \t\r\n")))


def _tokens(values: list[str]) -> list[str]:
    return [token.strip().lower() for value in values for token in value.split(",") if token.strip()]


def _content_length(values: list[str]) -> int:
    found = {token.strip() for value in values for token in value.split(",")}
    if len(found) != 1 or not (value := found.pop()).isdigit():
        raise ProtocolError(f"invalid Content-Length {', '.join(values)!r}")
    return int(value)


def _chunk_end(fp: BinaryIO) -> None:
    end = fp.read(1)
    if end == b"\r":
        end += fp.read(1)
    if end not in (b"\r\n", b"\n"):
        if not end or end == b"\r":
            raise IncompleteBody("connection closed after a chunk")
        raise ProtocolError("chunk data not followed by CRLF")


def _chunk_size(fp: BinaryIO) -> int:
    line = _readline(fp, "chunk-size line")
    if not line:
        raise IncompleteBody("connection closed before a chunk")
    size = line.split(b";", 1)[0].strip()
    if not size or len(size) > 16 or any(c not in b"0123456789abcdefABCDEF" for c in size):
        raise ProtocolError(f"invalid chunk size {line[:40]!r}")
    return int(size, 16)
