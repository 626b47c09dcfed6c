"""The bundle's own hostname, hosts and resolv.conf, bind-mounted over the image's.

Editing them changes the container, never the image. oci-net rewrites BUNDLE/hosts in
place (it is bind-mounted: a rename would not be seen inside the container).
"""

from __future__ import annotations

import ipaddress
import os
from typing import Any, Sequence

from oci.fsutil import write_atomic

LOCALHOST = """127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
fe00::0\tip6-localnet
ff00::0\tip6-mcastprefix
ff02::1\tip6-allnodes
ff02::2\tip6-allrouters
"""
FILES = {"hostname": "/etc/hostname", "hosts": "/etc/hosts", "resolv.conf": "/etc/resolv.conf"}


def hosts(hostname: str, extra: list[tuple[str, str]], host_file: str | None = None) -> str:
    """/etc/hosts: the host's own (for --network host) or localhost lines and the hostname, then --add-host."""
    if host_file is not None:
        text = _read(host_file)
        text = text if not text or text.endswith("\n") else text + "\n"
    else:
        text = LOCALHOST + (f"127.0.1.1\t{hostname}\n" if hostname and hostname != "localhost" else "")
    return text + "".join(f"{address}\t{name}\n" for name, address in extra)


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def resolv_conf(dns: Sequence[str], search: Sequence[str], options: Sequence[str], host_file: str = "/etc/resolv.conf",
                keep_loopback: bool = False) -> str:
    """--dns/--dns-search/--dns-option, else the host's resolv.conf minus loopback nameservers (as Docker)."""
    for server in dns:
        try:
            ipaddress.ip_address(server)
        except ValueError:
            from oci.errors import InvalidInput

            raise InvalidInput(f"invalid --dns {server!r}: not an IP address") from None
    lines = _read(host_file).splitlines()
    host_servers = []
    kept = []
    for line in lines:
        words = line.split()
        if words[:1] == ["nameserver"] and len(words) > 1:
            if keep_loopback or not _is_loopback(words[1]):
                host_servers.append(words[1])
        elif words[:1] in (["search"], ["domain"]):
            if not search:
                kept.append(line)
        elif words[:1] == ["options"]:
            if not options:
                kept.append(line)
    servers = dns or host_servers
    out = [f"nameserver {s}" for s in servers] + kept
    if search:
        out.append("search " + " ".join(search))
    if options:
        out.append("options " + " ".join(options))
    return "\n".join(out) + "\n"


def write(bundle: str, contents: dict[str, str]) -> list[dict[str, Any]]:
    """Write the files into the bundle and return their bind mounts."""
    mounts = []
    for name, text in contents.items():
        path = os.path.join(bundle, name)
        write_atomic(path, text.encode(), 0o644)
        mounts.append({"destination": FILES[name], "type": "bind", "source": path, "options": ["rbind", "rprivate"]})
    return mounts
