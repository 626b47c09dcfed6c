"""Helpers for the oci-net integration tests: namespaces, networks and cleanup of our own only.

Every global name carries a random suffix (netns `ocikit-test-*`, bridges `ocit*`, nftables
tables `ocikit_t*`), subnets are picked from 10.213.0.0/16 among those no host route or
address touches, and traffic only goes between the host and namespaces made here.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import command, run

POOL = ipaddress.ip_network("10.213.0.0/16")


def host_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network the host has an address or a route in."""
    out = subprocess.run(["ip", "-j", "-4", "route", "show", "table", "all"], capture_output=True, text=True)
    nets = []
    for route in json.loads(out.stdout or "[]"):
        dst = route.get("dst", "")
        if dst and dst != "default":
            with contextlib.suppress(ValueError):
                nets.append(ipaddress.ip_network(dst if "/" in dst else dst + "/32", strict=False))
    return nets


def free_subnet(taken: list) -> str:
    """A /24 of 10.213.0.0/16 that no host route and no subnet in `taken` overlaps."""
    busy = host_networks() + [ipaddress.ip_network(t) for t in taken]
    candidates = list(POOL.subnets(new_prefix=24))[100:250]
    random.shuffle(candidates)
    for net in candidates:
        if not any(net.overlaps(b) for b in busy):
            return str(net)
    raise RuntimeError("no free test subnet in 10.213.0.0/16")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """The namespaces, networks and processes of one test, all removed by `close`."""

    def __init__(self, tmp: Path) -> None:
        self.tag = secrets.token_hex(3)
        self.tmp = tmp
        self.state = str(tmp / "state")
        self.table = f"ocikit_t{self.tag}"
        self.namespaces: list[str] = []
        self.bridges: list[str] = []
        self.subnets: list[str] = []
        self.procs: list[subprocess.Popen] = []
        self.networks: list[str] = []

    def net(self, *args: str, check: bool = True, input: bytes | None = None) -> subprocess.CompletedProcess:
        return run("net", "--state-dir", self.state, *args, check=check, input=input)

    def create_network(self, suffix: str = "a", ipv6: bool = True, table: str | None = None) -> dict:
        name, bridge = f"t{self.tag}{suffix}", f"ocit{self.tag}{suffix}"
        subnet = free_subnet(self.subnets)
        self.subnets.append(subnet)
        args = ["create", name, "--subnet", subnet, "--bridge", bridge, "--nft-table", table or self.table]
        if ipv6:
            args += ["--subnet6", f"fd42:213:{secrets.randbelow(0xffff):x}::/64"]
        self.bridges.append(bridge)
        self.networks.append(name)
        return json.loads(self.net(*args).stdout)

    def netns(self, suffix: str) -> str:
        name = f"ocikit-test-{self.tag}-{suffix}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        self.namespaces.append(name)
        return f"/run/netns/{name}"

    def exec(self, netns: str, *argv: str, timeout: float = 10, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", os.path.basename(netns), *argv], capture_output=True,
                              text=True, timeout=timeout, **kw)

    def ping(self, netns: str, target: str, hosts_file: str | None = None, wait: int = 2) -> bool:
        """busybox ping from the netns; with `hosts_file` bind-mounted on /etc/hosts in a mount namespace."""
        if hosts_file:
            script = f"mount --bind {hosts_file} /etc/hosts && exec busybox ping -c1 -W{wait} {target}"
            argv = ["unshare", "-m", "--propagation", "private", "sh", "-c", script]
        else:
            argv = ["busybox", "ping", "-c1", f"-W{wait}", target]
        return self.exec(netns, *argv).returncode == 0

    def spawn(self, netns: str | None, *argv: str) -> subprocess.Popen:
        prefix = ["ip", "netns", "exec", os.path.basename(netns)] if netns else []
        proc = subprocess.Popen(prefix + list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        self.procs.append(proc)
        return proc

    def sleeper(self) -> int:
        """The pid of a process in a network namespace of its own (`unshare -n sleep`)."""
        proc = self.spawn(None, "unshare", "-n", "sleep", "60")
        home = os.readlink("/proc/self/ns/net")
        for _ in range(200):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{proc.pid}/ns/net") != home:
                    return proc.pid
            time.sleep(0.01)
        raise RuntimeError("unshare -n did not start")

    def tcp_server(self, netns: str, port: int, reply: str, dual_stack: bool = False) -> subprocess.Popen:
        """A server answering `REPLY from CLIENT-ADDRESS`, on IPv4 (and IPv6 with `dual_stack`)."""
        listen = ("s=socket.socket(socket.AF_INET6); s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)\n"
                  if dual_stack else "s=socket.socket()\n")
        code = (
            "import socket,sys\n"
            f"{listen}s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            f"s.bind(('{'::' if dual_stack else '0.0.0.0'}',{port})); s.listen(8); print('ready', flush=True)\n"
            "while True:\n"
            "    c,a=s.accept(); c.sendall(('%s from %s\\n' % (sys.argv[1], a[0])).encode()); c.close()\n"
        )
        proc = self.spawn(netns, sys.executable, "-c", code, reply)
        assert proc.stdout.readline().strip() == b"ready"
        return proc

    def close(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for name in self.networks:
            run("net", "--state-dir", self.state, "rm", name)
        for name in self.namespaces:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        for bridge in self.bridges:
            subprocess.run(["ip", "link", "del", bridge], capture_output=True)
        for table in {self.table}:
            subprocess.run(["nft", "delete", "table", "inet", table], capture_output=True)


def links() -> str:
    return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout


def nft_table(table: str) -> str:
    return subprocess.run(["nft", "list", "table", "inet", table], capture_output=True, text=True).stdout


def connect_tcp(host: str, port: int, timeout: float = 3) -> str:
    with socket.create_connection((host, port), timeout=timeout) as s:
        return s.makefile().readline().strip()


def oci_net_argv() -> list[str]:
    return command("net")
