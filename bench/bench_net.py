#!/usr/bin/env python3
"""Add and delete latency of oci-net as a CNI plugin against Debian's CNI plugins.

Two cases, each against what a runtime would run for the same job:

* plain: oci-net against `bridge` + `host-local` (one plugin with its IPAM plugin);
* one published port: oci-net with a `portMappings` entry against the conflist
  bridge + host-local, then `portmap` (capabilities {"portMappings": true}), the shape of
  podman's 87-podman-bridge.conflist. The peer's ADD is bridge's ADD plus portmap's ADD
  (its configuration carrying bridge's result as prevResult, as libcni chains them), its
  DEL is portmap's DEL then bridge's DEL.

Every call runs as a runtime runs it: a fresh process, CNI_* variables in the environment
and the network configuration on stdin, each container a network namespace of its own made
with `ip netns add`. A warm-up ADD per network creates the bridges (and oci-net's
nftables table, portmap's chains) outside the timings, as a runtime's first container would;
its DEL comes after the timed ones (oci-net's last DEL of a network removes its bridge and
table, the next ADD sets them up again).
Then RUNS containers are added, oci-net and the peer interleaved, then deleted likewise;
medians are printed with the ratio oci-net / peer. oci-net is run as installed: the launcher
in the venv when there is one, its modules byte-compiled.

Also printed, to show where oci-net's time goes: the interpreter start-up (`python -c pass`),
`CNI_COMMAND=VERSION` (start-up plus the CLI and CNI modules) and the import of
oci.net.rtnl (pyroute2's message classes, as oci.net.links uses them).

Needs root, iproute2, nftables, iptables (for portmap) and containernetworking-plugins
(/usr/lib/cni). Only namespaces, bridges and subnets of 10.213.0.0/16 made here see
traffic, on host ports checked free; everything is removed at the end (portmap's shared
CNI-HOSTPORT-* chains stay, as after any portmap user).
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = int(os.environ.get("BENCH_RUNS", "15"))
CNI_DIR = os.environ.get("CNI_PLUGIN_DIR", "/usr/lib/cni")
# As installed: bytecode cached (the environment may set PYTHONDONTWRITEBYTECODE)
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def ocikit_argv() -> list[str]:
    script = os.path.join(os.path.dirname(sys.executable), "oci-net")
    return [script] if os.path.exists(script) else [sys.executable, os.path.join(ROOT, "bin", "oci_net.py")]


def free_subnets(count: int) -> list[str]:
    routes = json.loads(subprocess.run(["ip", "-j", "-4", "route", "show", "table", "all"], capture_output=True,
                                       text=True).stdout or "[]")
    busy = [ipaddress.ip_network(r["dst"] if "/" in r["dst"] else r["dst"] + "/32", strict=False)
            for r in routes if r.get("dst") not in (None, "default")]
    pool = [n for n in list(ipaddress.ip_network("10.213.0.0/16").subnets(new_prefix=24))[20:100]
            if not any(n.overlaps(b) for b in busy)]
    return [str(n) for n in pool[:count]]


def free_ports(count: int) -> list[int]:
    """Host ports nobody listens on (TCP and UDP bind on all addresses succeed)."""
    found: list[int] = []
    while len(found) < count:
        port = random.randrange(30000, 60000)
        if port in found:
            continue
        try:
            for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                with socket.socket(socket.AF_INET, kind) as s:
                    s.bind(("0.0.0.0", port))
        except OSError:
            continue
        found.append(port)
    return found


class Chain:
    """A network as a runtime runs it: plugins called in order on ADD, in reverse on DEL."""

    def __init__(self, name: str, plugins: list[tuple[list[str], dict]]) -> None:
        self.name, self.plugins = name, plugins

    def _env(self, command: str, container: str, netns: str) -> dict[str, str]:
        return {**ENV, "CNI_COMMAND": command, "CNI_CONTAINERID": container, "CNI_NETNS": netns,
                "CNI_IFNAME": "eth0", "CNI_PATH": CNI_DIR}

    def _conf(self, plugin: dict, ports: list[dict], prev: dict | None) -> bytes:
        conf = {"cniVersion": "1.0.0", "name": self.name, **plugin}
        if ports and plugin.get("capabilities", {}).get("portMappings"):
            conf["runtimeConfig"] = {"portMappings": ports}
        if prev is not None:
            conf["prevResult"] = prev
        return json.dumps(conf).encode()

    def _call(self, argv: list[str], env: dict[str, str], stdin: bytes) -> bytes:
        proc = subprocess.run(argv, input=stdin, capture_output=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"{argv[-1]} {env['CNI_COMMAND']} failed: {proc.stdout!r} {proc.stderr!r}")
        return proc.stdout

    def add(self, container: str, netns: str, ports: list[dict]) -> tuple[float, dict]:
        start, prev = time.perf_counter(), None
        for argv, plugin in self.plugins:
            prev = json.loads(self._call(argv, self._env("ADD", container, netns), self._conf(plugin, ports, prev)))
        return (time.perf_counter() - start) * 1000, prev

    def delete(self, container: str, netns: str, ports: list[dict], prev: dict) -> float:
        start = time.perf_counter()
        for argv, plugin in reversed(self.plugins):
            self._call(argv, self._env("DEL", container, netns), self._conf(plugin, ports, prev))
        return (time.perf_counter() - start) * 1000


def mapping(port: int) -> list[dict]:
    return [{"hostPort": port, "containerPort": 80, "protocol": "tcp"}]


def measure(chains: dict[str, Chain], spaces: dict[str, list[str]], ports: dict[str, list[int]] | None,
            label: str, added: list) -> dict[str, tuple[float, float]]:
    """Median ADD and DEL of each chain over RUNS containers, the chains interleaved."""
    def maps(tool: str, i: int) -> list[dict]:
        return mapping(ports[tool][i]) if ports else []

    results: dict[str, dict] = {}
    warm = {}
    for tool, chain in chains.items():  # warm-up: bridges, tables, chains; attached until the end, as
        netns = f"/run/netns/{spaces[tool][0]}"  # oci-net's last DEL of a network removes its bridge and table
        _, warm[tool] = chain.add(f"{label}warm", netns, maps(tool, 0))
        added.append((chain, f"{label}warm", netns, maps(tool, 0), warm[tool]))
    adds: dict[str, list[float]] = {tool: [] for tool in chains}
    dels: dict[str, list[float]] = {tool: [] for tool in chains}
    for i in range(1, RUNS + 1):
        for tool, chain in chains.items():
            elapsed, results[f"{tool}{i}"] = chain.add(f"{label}{i}", f"/run/netns/{spaces[tool][i]}", maps(tool, i))
            added.append((chain, f"{label}{i}", f"/run/netns/{spaces[tool][i]}", maps(tool, i), results[f"{tool}{i}"]))
            adds[tool].append(elapsed)
    for i in range(1, RUNS + 1):
        for tool, chain in chains.items():
            dels[tool].append(chain.delete(f"{label}{i}", f"/run/netns/{spaces[tool][i]}", maps(tool, i),
                                           results[f"{tool}{i}"]))
            added.pop(len(chains))
    for tool, chain in chains.items():
        chain.delete(f"{label}warm", f"/run/netns/{spaces[tool][0]}", maps(tool, 0), warm[tool])
        added.pop(0)
    return {tool: (statistics.median(adds[tool]), statistics.median(dels[tool])) for tool in chains}


def median_ms(argv: list[str], env: dict[str, str] | None = None, runs: int = 15) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, env=env, check=True, stdin=subprocess.DEVNULL)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> None:
    if os.geteuid() != 0:
        sys.exit("bench_net: needs root (network namespaces and bridges)")
    for plugin in ("bridge", "host-local", "portmap"):
        if not os.path.exists(os.path.join(CNI_DIR, plugin)):
            sys.exit(f"bench_net: no CNI {plugin} plugin in {CNI_DIR} (Debian package containernetworking-plugins)")
    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(ROOT, "oci"), os.path.join(ROOT, "bin")],
                   check=True, env=ENV)
    tag = secrets.token_hex(3)
    work = tempfile.mkdtemp(prefix="bench-net-")
    spaces = {tool: [f"ocikit-test-b{tag}-{tool}{i}" for i in range(RUNS + 1)] for tool in ("o", "c")}
    bridges = {"o": f"ocitb{tag}o", "c": f"ocitb{tag}c"}
    table = f"ocikit_b{tag}"
    sub_o, sub_c = free_subnets(2)
    host_ports = free_ports(2 * (RUNS + 1))
    ports = {"o": host_ports[:RUNS + 1], "c": host_ports[RUNS + 1:]}
    ours = {"type": "ocikit", "bridge": bridges["o"], "nftTable": table, "stateDir": os.path.join(work, "ocikit"),
            "capabilities": {"portMappings": True}, "ipam": {"subnet": sub_o}}
    bridge = {"type": "bridge", "bridge": bridges["c"], "isGateway": True, "ipMasq": False,
              "ipam": {"type": "host-local", "subnet": sub_c, "dataDir": os.path.join(work, "host-local")}}
    portmap = {"type": "portmap", "capabilities": {"portMappings": True}}
    plugin = os.path.join(CNI_DIR, "{}").format
    added: list = []
    try:
        for names in spaces.values():
            for name in names:
                subprocess.run(["ip", "netns", "add", name], check=True)
        plain = measure({"o": Chain(f"bo{tag}", [(ocikit_argv(), ours)]),
                         "c": Chain(f"bc{tag}", [([plugin("bridge")], bridge)])}, spaces, None, "p", added)
        published = measure({"o": Chain(f"bo{tag}", [(ocikit_argv(), ours)]),
                             "c": Chain(f"bc{tag}", [([plugin("bridge")], bridge), ([plugin("portmap")], portmap)])},
                            spaces, ports, "q", added)
        base = median_ms([sys.executable, "-c", "pass"], ENV)
        version = median_ms(ocikit_argv(), {**ENV, "CNI_COMMAND": "VERSION"})
        imports = median_ms([sys.executable, "-c", "from oci.net import rtnl"], ENV)
    finally:
        for chain, container, netns, maps, prev in added:  # a failed run: undo what is still attached
            try:
                chain.delete(container, netns, maps, prev)
            except RuntimeError:
                pass
        for names in spaces.values():
            for name in names:
                subprocess.run(["ip", "netns", "del", name], capture_output=True)
        for name in bridges.values():
            subprocess.run(["ip", "link", "del", name], capture_output=True)
        subprocess.run(["nft", "delete", "table", "inet", table], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    print(f"CNI ADD/DEL latency, median of {RUNS} containers (one netns each), fresh process per call")
    print(f"  {'':28}{'oci-net':>10}{'peer':>12}{'ratio':>8}   peer")
    for label, case, peer in (("", plain, "bridge+host-local"),
                              (" -p 1 port", published, "bridge+host-local, then portmap")):
        for i, verb in enumerate(("ADD", "DEL")):
            ours_ms, theirs_ms = case["o"][i], case["c"][i]
            print(f"  {verb + label:28}{ours_ms:8.1f} ms{theirs_ms:9.1f} ms{ours_ms / theirs_ms:7.2f}x   {peer}")
    print("where oci-net's time goes:")
    print(f"  python -c pass              {base:8.1f} ms")
    print(f"  oci-net CNI VERSION         {version:8.1f} ms  (start-up, CLI and CNI modules)")
    print(f"  import oci.net.rtnl         {imports:8.1f} ms  (with start-up: pyroute2's message classes)")


if __name__ == "__main__":
    main()
