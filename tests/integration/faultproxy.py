"""A fault-injecting HTTP/1.1 proxy for the tests, in front of a plain-HTTP registry.

    proxy = FaultProxy("127.0.0.1:5000").start()        # proxy.host is "127.0.0.1:PORT"
    proxy.add(Fault("GET", r"/blobs/sha256:", action="reset", after=1000, times=1))
    ...  # talk to proxy.host instead of the registry
    proxy.count("GET", r"/blobs/")                        # requests seen, faulty or not

Each client connection gets its own upstream connection; requests are parsed (Content-Length
or chunked bodies) and forwarded byte for byte, so keep-alive works as with the registry
(`FaultProxy(upstream, keep_alive=False)` closes every connection after one answer, so that
clients never resend a request on a reused connection they think went stale).
The client's `Host` header is kept, so the registry's `Location` headers point at the proxy.

Fault actions (the first matching fault with `times` left applies, then `times` drops by one;
`skip=N` lets the first N matching requests through untouched):

* `status`: answer `status` (default 500) with `headers` and `body`, without forwarding;
  `Fault(..., action="status", status=429, headers={"Retry-After": "1"})`.
* `reset`: forward, send the response head and `after` bytes of its body, then, once the
  client's kernel has acknowledged them, reset the connection (TCP RST: a reset that overtakes
  bytes still in flight makes the client's kernel drop them, so a loaded machine would see
  the break at byte 0); with `after=0` nothing of the answer is sent.
* `reset_request`: forward the request head and `after` bytes of its body upstream, wait
  `seconds` (so the registry reads them), then reset both connections (an interrupted
  upload: the registry saw a partial body).
* `corrupt`: forward, flip the byte at offset `after` of the response body.
* `corrupt_request`: forward the request with the byte at offset `after` of its body
  flipped (an upload altered on the way: the registry sees the wrong digest).
* `stall`: forward, send the head and `after` bytes of the body (with `after=0`, not even
  the head), then sleep `seconds` and close (a registry that stops answering).
* `delay`: sleep `seconds` before forwarding (a slow but correct registry).
"""

from __future__ import annotations

import fcntl
import re
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

MAX_HEAD = 64 << 10


@dataclass
class Fault:
    """A fault for requests whose method and path (with query) match."""

    method: str | None  # None: any method
    path: str  # a regular expression searched in the request target
    action: str = "status"
    times: int = 1  # how many matching requests get the fault; -1 for every one
    skip: int = 0  # matching requests let through untouched before the fault applies
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    after: int = 0
    seconds: float = 0.0
    hits: int = 0

    def matches(self, method: str, target: str) -> bool:
        return (self.method is None or self.method == method) and re.search(self.path, target) is not None


@dataclass(frozen=True)
class Seen:
    """One request that reached the proxy, and what happened to it."""

    method: str
    target: str
    status: int  # the status sent to the client (0 when the connection was cut before a head)
    fault: str | None


class _Closed(Exception):
    pass


class _Reader:
    """Buffered reads of an HTTP stream from a socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buf = sock, b""

    def _fill(self) -> None:
        data = self.sock.recv(1 << 16)
        if not data:
            raise _Closed()
        self.buf += data

    def head(self) -> bytes:
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > MAX_HEAD:
                raise _Closed()
            self._fill()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        return head + b"\r\n\r\n"

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line + b"\r\n"

    def exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def upto(self, n: int) -> bytes:
        if not self.buf:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data


def _parse_head(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    return lines[0], headers


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name.lower():
            return value
    return None


def _build_head(first: str, headers: list[tuple[str, str]]) -> bytes:
    return ("\r\n".join([first] + [f"{k}: {v}" for k, v in headers]) + "\r\n\r\n").encode("latin-1")


SIOCOUTQ = 0x5411  # bytes of the send queue the peer has not acknowledged yet (TIOCOUTQ)


def _delivered(sock: socket.socket, timeout: float = 10.0) -> None:
    """Wait until the peer's kernel has acknowledged every byte sent on `sock`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if not struct.unpack("i", fcntl.ioctl(sock.fileno(), SIOCOUTQ, b"\0" * 4))[0]:
                return
        except OSError:
            return
        time.sleep(0.001)


def _reset(sock: socket.socket) -> None:
    """Close with a TCP RST instead of a FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class FaultProxy:
    """The proxy: `start()`, `add(Fault)`, `count(method, pattern)`, `seen`, `stop()`."""

    def __init__(self, upstream: str, keep_alive: bool = True) -> None:
        host, _, port = upstream.rpartition(":")
        self.keep_alive = keep_alive  # False: every answer says `Connection: close` (no reused connections)
        self.upstream = (host, int(port))
        self.upstream_host = upstream
        self.faults: list[Fault] = []
        self.seen: list[Seen] = []
        self.counts: Counter = Counter()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._stopping = False
        self.host = ""

    # -- configuration and counters ------------------------------------------

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        """Forget faults and counters."""
        with self._lock:
            self.faults.clear()
            self.seen.clear()
            self.counts.clear()

    def count(self, method: str | None = None, pattern: str = "") -> int:
        """How many requests with this method (any when None) had a target matching `pattern`."""
        with self._lock:
            return sum(1 for s in self.seen if (method is None or s.method == method) and re.search(pattern, s.target))

    def _take_fault(self, method: str, target: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.times != 0 and fault.matches(method, target):
                    if fault.skip > 0:
                        fault.skip -= 1
                        continue
                    if fault.times > 0:
                        fault.times -= 1
                    fault.hits += 1
                    return fault
        return None

    def _record(self, method: str, target: str, status: int, fault: Fault | None) -> None:
        with self._lock:
            self.seen.append(Seen(method, target, status, fault.action if fault else None))
            self.counts[(method, target.partition("?")[0])] += 1

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.host = f"127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True, name="faultproxy").start()
        return self

    def stop(self) -> None:
        self._stopping = True
        if self._listener:
            self._listener.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stopping:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    # -- one client connection -------------------------------------------------

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            reader = _Reader(client)
            up_reader: _Reader | None = None
            while True:
                head = reader.head()
                first, headers = _parse_head(head)
                method, target = first.split(" ")[0], first.split(" ")[1]
                fault = self._take_fault(method, target)
                if fault and fault.action == "status":
                    self._drain_body(reader, headers)
                    extra = dict(fault.headers)
                    out = [("Content-Length", str(len(fault.body))), *extra.items()]
                    if not self.keep_alive:
                        out.append(("Connection", "close"))
                    if "Content-Type" not in extra:
                        out.append(("Content-Type", "application/json"))
                    client.sendall(_build_head(f"HTTP/1.1 {fault.status} Fault", out) + fault.body)
                    self._record(method, target, fault.status, fault)
                    if not self.keep_alive:
                        return
                    continue
                if fault and fault.action == "delay":
                    time.sleep(fault.seconds)
                if upstream is None:
                    upstream = socket.create_connection(self.upstream)
                    up_reader = _Reader(upstream)
                assert up_reader is not None
                upstream.sendall(_build_head(first, headers))
                limit = fault.after if fault and fault.action == "reset_request" else None
                flip = fault.after if fault and fault.action == "corrupt_request" else None
                complete = self._copy_body(reader, headers, upstream, limit, flip)
                if not complete:
                    self._record(method, target, 0, fault)
                    time.sleep(fault.seconds if fault else 0)  # let the registry take in what arrived
                    _reset(upstream)
                    upstream = None
                    _reset(client)
                    return
                if not self._relay_response(method, target, up_reader, client, fault):
                    return
        except (_Closed, OSError, ValueError, IndexError):
            pass
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    try:
                        sock.close()
                    except OSError:
                        pass

    @staticmethod
    def _drain_body(reader: _Reader, headers: list[tuple[str, str]]) -> None:
        FaultProxy._copy_body(reader, headers, None, None)

    @staticmethod
    def _copy_body(reader: _Reader, headers: list[tuple[str, str]], out: socket.socket | None,
                   limit: int | None, flip: int | None = None) -> bool:
        """Copy a request or response body; False if cut after `limit` bytes. The byte at
        offset `flip` of a Content-Length body is inverted on the way."""
        sent = 0

        def send(data: bytes) -> bool:
            nonlocal sent
            if flip is not None and sent <= flip < sent + len(data):
                i = flip - sent
                data = data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:]
            if limit is not None and sent + len(data) > limit:
                if out is not None and limit > sent:
                    out.sendall(data[: limit - sent])
                return False
            if out is not None:
                out.sendall(data)
            sent += len(data)
            return True

        if (_header(headers, "Transfer-Encoding") or "").lower() == "chunked":
            while True:
                size_line = reader.line()
                size = int(size_line.split(b";")[0], 16)
                chunk = size_line + reader.exactly(size + 2)
                if not send(chunk):
                    return False
                if size == 0:
                    return True
        remaining = int(_header(headers, "Content-Length") or 0)
        while remaining > 0:
            data = reader.upto(min(remaining, 1 << 16))
            remaining -= len(data)
            if not send(data):
                return False
        return True

    def _relay_response(self, method: str, target: str, up: _Reader, client: socket.socket,
                        fault: Fault | None) -> bool:
        """Forward one response, applying a response fault; False when the connection is done."""
        head = up.head()
        first, headers = _parse_head(head)
        status = int(first.split(" ")[1])
        headers = [(k, self._rewrite_location(v) if k.lower() == "location" else v) for k, v in headers]
        action = fault.action if fault else None
        if fault and action in ("reset", "stall") and fault.after == 0:  # nothing of the answer arrives
            self._record(method, target, 0, fault)
            if action == "stall":
                time.sleep(fault.seconds)
                client.close()
            else:
                _reset(client)
            return False
        self._record(method, target, status, fault)
        if not self.keep_alive:
            headers = [(k, v) for k, v in headers if k.lower() != "connection"] + [("Connection", "close")]
        client.sendall(_build_head(first, headers))
        no_body = method == "HEAD" or status in (204, 304) or 100 <= status < 200
        if no_body:
            return self.keep_alive
        if action in ("reset", "stall"):
            self._copy_body(up, headers, client, fault.after)
            if action == "stall":
                time.sleep(fault.seconds)
                client.close()
            else:
                _delivered(client)
                _reset(client)
            return False
        if action == "corrupt":
            body = self._read_plain_body(up, headers)
            if fault.after < len(body):
                body = body[: fault.after] + bytes([body[fault.after] ^ 0xFF]) + body[fault.after + 1:]
            if (_header(headers, "Transfer-Encoding") or "").lower() == "chunked":
                body = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n" if body else b"0\r\n\r\n"
            client.sendall(body)
            return self.keep_alive
        self._copy_body(up, headers, client, None)
        return self.keep_alive

    @staticmethod
    def _read_plain_body(up: _Reader, headers: list[tuple[str, str]]) -> bytes:
        if (_header(headers, "Transfer-Encoding") or "").lower() == "chunked":
            body = b""
            while True:
                size = int(up.line().split(b";")[0], 16)
                body += up.exactly(size)
                up.exactly(2)
                if size == 0:
                    return body
        return up.exactly(int(_header(headers, "Content-Length") or 0))

    def _rewrite_location(self, value: str) -> str:
        for scheme in ("http://", "https://"):
            if value.startswith(scheme + self.upstream_host):
                return "http://" + self.host + value[len(scheme + self.upstream_host):]
        return value
