"""Run a command where every DNS name is unknown: `unshare -nm python nxdomain.py CMD...`.

Inside its own network and mount namespaces (made by the caller's `unshare -nm`), this brings
loopback up, points /etc/resolv.conf (bind-mounted over, in this mount namespace only) at
127.0.0.1 and answers every query there with NXDOMAIN, then runs CMD and exits with its code.
The resolver then says "name or service not known" at once, as for a mistyped registry host,
whatever DNS the machine has (or lacks).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading


def nxdomain(query: bytes) -> bytes:
    """The NXDOMAIN answer to a DNS query: its id and question, rcode 3, no records."""
    end = 12
    while end < len(query) and query[end]:
        end += 1 + query[end]
    question = query[12:end + 5]  # the name's labels, its terminating zero, type and class
    flags = 0x8180 | (query[2] << 8 & 0x0100) | 3  # response, recursion desired as asked, available; NXDOMAIN
    return query[:2] + flags.to_bytes(2, "big") + (1).to_bytes(2, "big") + bytes(6) + question


def serve(sock: socket.socket) -> None:
    while True:
        query, peer = sock.recvfrom(4096)
        if len(query) > 12:
            sock.sendto(nxdomain(query), peer)


def main(argv: list[str]) -> int:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 53))
    threading.Thread(target=serve, args=(sock,), daemon=True).start()
    with tempfile.NamedTemporaryFile("w", suffix=".resolv.conf") as conf:
        conf.write("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        conf.flush()
        subprocess.run(["mount", "--bind", conf.name, "/etc/resolv.conf"], check=True)
        return subprocess.run(argv).returncode


if __name__ == "__main__":
    os.environ.pop("LOCALDOMAIN", None)
    sys.exit(main(sys.argv[1:]))
