#!/usr/bin/env python3
"""Add and delete latency of oci-net as a CNI plugin against Debian's CNI bridge + host-local.

Both run exactly as a runtime runs them: a fresh process per call, CNI_* variables in the
environment and the network configuration on stdin, each container a network namespace of
its own made with `ip netns add`. One warm-up ADD/DEL per plugin creates the bridge (and
oci-net's nftables table) outside the timings, as a runtime's first container would. Then
RUNS containers are added one after the other, then deleted, and the median latency of
ADD and DEL is printed for each plugin with the ratio oci-net / bridge.

Also printed, to show where oci-net's time goes: the interpreter start-up (`python -c pass`),
`CNI_COMMAND=VERSION` (start-up plus the CLI and CNI modules) and the import of
oci.net.rtnl (pyroute2's message classes, as oci.net.links uses them).

Needs root, iproute2 and containernetworking-plugins (/usr/lib/cni). Only namespaces,
bridges and a subnet of 10.213.0.0/16 made here see traffic; everything is removed at the end.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = int(os.environ.get("BENCH_RUNS", "15"))
CNI_DIR = os.environ.get("CNI_PLUGIN_DIR", "/usr/lib/cni")


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


def timed(argv: list[str], env: dict[str, str], stdin: bytes) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, input=stdin, capture_output=True, env=env)
    elapsed = (time.perf_counter() - start) * 1000
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} {env.get('CNI_COMMAND')} failed: {proc.stdout!r} {proc.stderr!r}")
    return elapsed


def cni_env(command: str, container: str, netns: str) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "CNI_COMMAND": command, "CNI_CONTAINERID": container,
            "CNI_NETNS": netns, "CNI_IFNAME": "eth0", "CNI_PATH": CNI_DIR}


def measure(argv: list[str], conf: dict, namespaces: list[str]) -> tuple[float, float]:
    stdin = json.dumps(conf).encode()
    warm = namespaces[0]
    timed(argv, cni_env("ADD", "warmup", warm), stdin)
    timed(argv, cni_env("DEL", "warmup", warm), stdin)
    adds = [timed(argv, cni_env("ADD", f"c{i}", ns), stdin) for i, ns in enumerate(namespaces[1:])]
    dels = [timed(argv, cni_env("DEL", f"c{i}", ns), stdin) for i, ns in enumerate(namespaces[1:])]
    return statistics.median(adds), statistics.median(dels)


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
    if not os.path.exists(os.path.join(CNI_DIR, "bridge")):
        sys.exit(f"bench_net: no CNI bridge plugin in {CNI_DIR} (Debian package containernetworking-plugins)")
    tag = secrets.token_hex(3)
    work = tempfile.mkdtemp(prefix="bench-net-")
    spaces = {tool: [f"ocikit-test-b{tag}-{tool}{i}" for i in range(RUNS + 1)] for tool in ("o", "c")}
    bridges = {"o": f"ocitb{tag}o", "c": f"ocitb{tag}c"}
    table = f"ocikit_b{tag}"
    sub_o, sub_c = free_subnets(2)
    try:
        for names in spaces.values():
            for name in names:
                subprocess.run(["ip", "netns", "add", name], check=True)
        ours = {"cniVersion": "1.0.0", "name": f"bo{tag}", "type": "ocikit", "bridge": bridges["o"],
                "nftTable": table, "stateDir": os.path.join(work, "ocikit"), "ipam": {"subnet": sub_o}}
        theirs = {"cniVersion": "1.0.0", "name": f"bc{tag}", "type": "bridge", "bridge": bridges["c"],
                  "isGateway": True, "ipMasq": False,
                  "ipam": {"type": "host-local", "subnet": sub_c, "dataDir": os.path.join(work, "host-local")}}
        peer_add, peer_del = measure([os.path.join(CNI_DIR, "bridge")], theirs,
                                     [f"/run/netns/{n}" for n in spaces["c"]])
        our_add, our_del = measure(ocikit_argv(), ours, [f"/run/netns/{n}" for n in spaces["o"]])
        base = median_ms([sys.executable, "-c", "pass"])
        version = median_ms(ocikit_argv(), {**os.environ, "CNI_COMMAND": "VERSION"})
        imports = median_ms([sys.executable, "-c", f"import sys; sys.path.insert(0, {ROOT!r}); "
                             "from oci.net import rtnl"])
    finally:
        for names in spaces.values():
            for name in names:
                subprocess.run(["ip", "netns", "del", name], capture_output=True)
        for bridge in bridges.values():
            subprocess.run(["ip", "link", "del", bridge], capture_output=True)
        subprocess.run(["nft", "delete", "table", "inet", table], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    print(f"CNI ADD/DEL latency, median of {RUNS} containers (one netns each), fresh process per call")
    print(f"  {'':28}{'oci-net':>10}{'bridge+host-local':>20}{'ratio':>8}")
    print(f"  {'ADD':28}{our_add:8.1f} ms{peer_add:17.1f} ms{our_add / peer_add:7.2f}x")
    print(f"  {'DEL':28}{our_del:8.1f} ms{peer_del:17.1f} ms{our_del / peer_del:7.2f}x")
    print("where oci-net's time goes:")
    print(f"  python -c pass              {base:8.1f} ms")
    print(f"  oci-net CNI VERSION         {version:8.1f} ms  (start-up, CLI and CNI modules)")
    print(f"  import oci.net.rtnl         {imports:8.1f} ms  (with start-up: pyroute2's message classes)")


if __name__ == "__main__":
    main()
