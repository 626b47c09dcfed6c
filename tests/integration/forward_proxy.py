"""A forward HTTP proxy for the tests, on 127.0.0.1: CONNECT tunnels and absolute-URL requests.

Names the client asks for are looked up in `routes` (name -> 127.0.0.1 port), so a client can
reach a local registry under a name that is not loopback (loopback is never proxied) without
any name resolution. Every request line is recorded; with `credentials`, requests without
the matching Proxy-Authorization get 407. Absolute-URL requests are forwarded one per
connection (`Connection: close`), which keeps the proxy small.
"""

from __future__ import annotations

import base64
import socket
import threading


class ForwardProxy:
    def __init__(self, routes: dict[str, int], credentials: tuple[str, str] | None = None) -> None:
        self.routes = routes
        self.seen: list[str] = []
        self.authorization = ("Basic " + base64.b64encode(":".join(credentials).encode()).decode()
                              if credentials else None)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client:
            head = b""
            while b"\r\n\r\n" not in head:
                data = client.recv(65536)
                if not data:
                    return
                head += data
            head, rest = head.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            self.seen.append(f"{method} {target}")
            fields = {line.split(":", 1)[0].lower(): line.split(":", 1)[1].strip() for line in lines[1:]}
            if self.authorization and fields.get("proxy-authorization") != self.authorization:
                client.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
                return
            if method == "CONNECT":
                upstream = self._upstream(target)
                if upstream is None:
                    client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                    return
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                self._pipe(client, upstream, rest)
                return
            address = target.split("://", 1)[1]
            authority, slash, path = address.partition("/")
            upstream = self._upstream(authority)
            if upstream is None:
                client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                return
            kept = [line for line in lines[1:] if not line.lower().startswith(("connection:", "proxy-"))]
            forwarded = "\r\n".join([f"{method} {slash}{path} HTTP/1.1", *kept, "Connection: close"]) + "\r\n\r\n"
            self._pipe(client, upstream, forwarded.encode("latin-1") + rest)

    def _upstream(self, authority: str) -> socket.socket | None:
        name, _, port = authority.rpartition(":")
        local = self.routes.get(f"{name}:{port}")
        return socket.create_connection(("127.0.0.1", local)) if local else None

    @staticmethod
    def _pipe(client: socket.socket, upstream: socket.socket, first: bytes) -> None:
        """Bytes both ways until either side closes."""
        with upstream:
            if first:
                upstream.sendall(first)

            def copy(source: socket.socket, sink: socket.socket) -> None:
                try:
                    while data := source.recv(65536):
                        sink.sendall(data)
                except OSError:
                    pass
                for sock in (sink, source):
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

            back = threading.Thread(target=copy, args=(upstream, client), daemon=True)
            back.start()
            copy(client, upstream)
            back.join(timeout=30)
