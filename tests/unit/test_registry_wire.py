"""oci.registry.wire: HTTP/1.1 framing against a server on 127.0.0.1 that sends crafted bytes."""

from __future__ import annotations

import contextlib
import io
import socket
import threading
from typing import Iterator

import pytest

from oci.registry.wire import (
    MAX_HEADERS,
    MAX_LINE,
    Connection,
    IncompleteBody,
    ProtocolError,
    RemoteClosed,
    Response,
)


class CraftedServer:
    """Accepts connections; answers each request on a connection with the next scripted bytes
    (None: close the connection instead). Records the requests' heads."""

    def __init__(self, answers: list[bytes | None]) -> None:
        self.answers = list(answers)
        self.requests: list[bytes] = []
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while self.answers:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                buffer = b""
                while self.answers:
                    while b"\r\n\r\n" not in buffer:
                        data = conn.recv(65536)
                        if not data:
                            break
                        buffer += data
                    if b"\r\n\r\n" not in buffer:
                        break
                    head, buffer = buffer.split(b"\r\n\r\n", 1)
                    self.requests.append(head)
                    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                                   if line.lower().startswith(b"content-length:")), 0)
                    while len(buffer) < length:
                        buffer += conn.recv(65536)
                    buffer = buffer[length:]
                    answer = self.answers.pop(0)
                    if answer is None:
                        break
                    conn.sendall(answer)

    def connection(self) -> Connection:
        return Connection("127.0.0.1", self.port, timeout=5)

    def close(self) -> None:
        self.listener.close()


@contextlib.contextmanager
def talking_to(answers: list[bytes | None]) -> Iterator[tuple[CraftedServer, Connection]]:
    """A server that will send `answers`, and a connection to it; both closed afterwards."""
    server = CraftedServer(answers)
    conn = server.connection()
    try:
        yield server, conn
    finally:
        conn.close()
        server.close()


def get(conn: Connection, target: str = "/v2/", method: str = "GET", headers: dict | None = None) -> Response:
    conn.request(method, target, headers or {})
    return conn.getresponse()


def exchange(answer: bytes, method: str = "GET") -> tuple[int, bytes]:
    with talking_to([answer]) as (_, conn):
        response = get(conn, method=method)
        return response.status, response.read()


def test_content_length_body():
    assert exchange(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello") == (200, b"hello")


def test_chunked_body_with_extensions_and_trailers():
    body = b"5;name=value\r\nhello\r\n7\r\n, world\r\n0\r\nDigest: x\r\n\r\n"
    assert exchange(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body) == (200, b"hello, world")


def test_body_until_close():
    assert exchange(b"HTTP/1.1 200 OK\r\n\r\nthe rest") == (200, b"the rest")


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_statuses(status):
    assert exchange(f"HTTP/1.1 {status} X\r\nContent-Length: 10\r\n\r\n".encode()) == (status, b"")


def test_head_has_no_body():
    assert exchange(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", "HEAD") == (200, b"")


def test_interim_responses_are_skipped():
    assert exchange(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok")[0] == 201


def test_repeated_headers_are_kept():
    with talking_to([b"HTTP/1.1 401 U\r\nWWW-Authenticate: Basic\r\nwww-authenticate: Bearer x\r\n"
                     b"Content-Length: 0\r\n\r\n"]) as (_, conn):
        response = get(conn)
        assert response.headers.get("Www-Authenticate") == "Basic"
        assert response.headers.get_all("WWW-AUTHENTICATE") == ["Basic", "Bearer x"]


@pytest.mark.parametrize("answer, error", [
    (b"HTTP/1.1 200 " + b"x" * (MAX_LINE + 10) + b"\r\n\r\n", ProtocolError),
    (b"HTTP/1.1 200 OK\r\nX: " + b"y" * (MAX_LINE + 10) + b"\r\n\r\n", ProtocolError),
    (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * (MAX_HEADERS + 1) + b"\r\n", ProtocolError),
    (b"SSH-2.0-OpenSSH\r\n\r\n", ProtocolError),
    (b"HTTP/1.1 2000 OK\r\n\r\n", ProtocolError),
    (b"HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n", ProtocolError),
    (b"HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n", ProtocolError),
    (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", ProtocolError),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", ProtocolError),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 0x5\r\n\r\nhello", ProtocolError),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", ProtocolError),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * 40 + b"\r\n", ProtocolError),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY", ProtocolError),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this", IncompleteBody),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nshort", IncompleteBody),
    (b"HTTP/1.1 200 OK\r\nContent-Le", IncompleteBody),
    (b"HTTP/1.1 100 Continue\r\n\r\n" * 9 + b"HTTP/1.1 200 OK\r\n\r\n", ProtocolError),
    (b"", RemoteClosed),
])
def test_hostile_answers_are_errors(answer, error):
    with pytest.raises(error):
        exchange(answer)


def test_readinto_fills_the_buffer_and_keeps_what_came_before_a_break():
    with talking_to([b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"a" * 40]) as (_, conn):
        response = get(conn)
        buffer = bytearray(1000)
        assert response.readinto(buffer) == 40 and buffer[:40] == b"a" * 40  # not lost with the connection
        with pytest.raises(IncompleteBody):
            response.readinto(buffer)


def test_readinto_stops_at_the_body_end():
    with talking_to([b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK"]) as (_, conn):
        response = get(conn)
        buffer = bytearray(100)
        assert response.readinto(buffer) == 5 and bytes(buffer[:5]) == b"hello"
        assert response.readinto(buffer) == 0 and response.isclosed()


def test_errors_are_connection_errors():
    assert issubclass(ProtocolError, OSError) and issubclass(RemoteClosed, ConnectionResetError)


def test_equal_repeated_content_lengths_are_one():
    assert exchange(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok") == (200, b"ok")


def test_transfer_encoding_wins_over_content_length_and_the_connection_is_not_reused():
    with talking_to([b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"2\r\nok\r\n0\r\n\r\n"]) as (_, conn):
        response = get(conn)
        assert response.read() == b"ok" and response.will_close


def test_keep_alive_after_a_full_read():
    with talking_to([b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na",
                     b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb"]) as (server, conn):
        first = get(conn, "/one")
        assert first.read(1) == b"a" and first.isclosed() and not first.will_close
        assert get(conn, "/two", headers={"Accept": "x"}).read() == b"b"
        assert server.connections == 1
        assert server.requests[1].startswith(b"GET /two HTTP/1.1\r\nHost: 127.0.0.1:")
        assert b"\r\nAccept: x" in server.requests[1]


def test_a_partly_read_body_spoils_the_connection():
    with talking_to([b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcd"]) as (_, conn):
        response = get(conn)
        assert response.read(2) == b"ab" and not response.isclosed()
        response.close()
        assert response.will_close and response.read() == b""


@pytest.mark.parametrize("answer", [b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                                    b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"])
def test_connection_close_and_http10_are_not_kept_alive(answer):
    with talking_to([answer]) as (_, conn):
        assert get(conn).will_close


def test_request_bodies_and_lengths():
    with talking_to([b"HTTP/1.1 201 C\r\nContent-Length: 0\r\n\r\n"] * 2) as (server, conn):
        conn.request("PUT", "/a", {}, b"12345")
        assert conn.getresponse().status == 201
        conn.request("PUT", "/b", {"Content-Length": "3"}, io.BytesIO(b"xyz"))
        assert conn.getresponse().status == 201
        assert b"Content-Length: 5" in server.requests[0]
        with pytest.raises(ValueError):
            conn.request("PUT", "/c", {}, io.BytesIO(b"xyz"))  # a stream needs its length


@pytest.mark.parametrize("target, headers", [("/a b", {}), ("/a\r\nX: y", {}), ("/", {"X": "a\r\nInjected: 1"}),
                                             ("/", {"Bad:Name": "v"})])
def test_requests_that_would_split_are_refused(target, headers):
    conn = Connection("127.0.0.1", 9, timeout=1)
    with pytest.raises(ValueError):
        conn.request("GET", target, headers)
    assert conn.sock is None  # refused before connecting


def test_host_header_of_ipv6_and_default_ports():
    assert Connection("::1", 5000, 1)._host_header == "[::1]:5000"
    assert Connection("example.test", 80, 1)._host_header == "example.test"


@pytest.mark.parametrize("netloc, expected", [("h", ("h", 80)), ("h:5000", ("h", 5000)), ("[::1]", ("::1", 80)),
                                              ("[::1]:5000", ("::1", 5000)), ("h:", ("h", 80))])
def test_split_host(netloc, expected):
    from oci.registry.urls import split_host

    assert split_host(netloc, 80) == expected


@pytest.mark.parametrize("netloc", ["", ":5000", "h:x", "h:0", "h:70000", "::1", "[::1", "[::1]x"])
def test_split_host_refuses(netloc):
    from oci.registry.urls import split_host

    with pytest.raises(ValueError):
        split_host(netloc, 80)
