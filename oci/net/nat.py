"""Masquerade, published ports and isolation in an nftables table of our own (family inet).

Rules are sent as JSON to `nft -j -f -` (one atomic batch per change) and read back with
`nft -j list table`; each rule carries a comment naming its owner, `ocikit net NETWORK`
for a network's rules and `ocikit port NETWORK VETH` for a container's published ports
(VETH, the host end of its veth pair, is unique per attachment and keeps the comment
within nftables' 128 bytes whatever the container id),
so removal deletes exactly those rules by handle and leaves everyone else's alone.

The table (default `ocikit`) holds:
* a set `bridges` of our bridges and a forward rule per network dropping traffic from its
  bridge to any other bridge of the set (networks are isolated from each other);
* postrouting: masquerade of the subnet leaving through other interfaces, of host-loopback
  sources and of DNATed traffic from the subnet itself (hairpin: a container reaching its
  own network's published port through the host);
* prerouting and output: DNAT of published ports on local addresses, so a port answers
  from the outside and from the host itself, 127.0.0.1 included (the bridge has
  route_localnet set, see links.ensure_bridge). A port without a host address is DNATed
  for IPv4 and, when the container has an IPv6 address, for IPv6; one with a host address
  for that address's family. IPv6 has no route_localnet: ::1 cannot be published (refused),
  IPv6 ports answer on the host's other IPv6 addresses (the bridge's gateway6 among them).
"""

from __future__ import annotations

import functools
import ipaddress
import json
import re
from typing import Any, NamedTuple, Sequence

from oci.errors import InvalidInput, OciError

SBIN_PATH = "/usr/local/sbin:/usr/sbin:/sbin"  # where nft lives; OCI hooks run with an empty environment
PORT_RE = re.compile(r"^(?:(?P<ip>\[[0-9A-Fa-f:.]+\]|[0-9.]+):)?(?P<host>\d+):(?P<ctr>\d+)"
                     r"(?:/(?P<proto>tcp|udp|sctp))?$")


class Port(NamedTuple):
    """One published port: HOSTIP:HOSTPORT -> CONTAINERPORT over tcp, udp or sctp (Kubernetes' protocols)."""

    host_port: int
    container_port: int
    protocol: str = "tcp"
    host_ip: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"hostPort": self.host_port, "containerPort": self.container_port,
                               "protocol": self.protocol}
        if self.host_ip:
            out["hostIP"] = self.host_ip
        return out

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Port:
        host_ip = doc.get("hostIP") or ""
        if host_ip in ("0.0.0.0", "::"):
            host_ip = ""
        return _checked(cls(int(doc["hostPort"]), int(doc["containerPort"]), str(doc.get("protocol", "tcp")).lower(),
                            host_ip))


def parse_port(text: str) -> Port:
    """`[HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp|sctp]`, as `docker run -p` takes it."""
    match = PORT_RE.match(text)
    if not match:
        raise InvalidInput(f"bad published port {text!r} (expected [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp|sctp])")
    host_ip = (match["ip"] or "").strip("[]")
    return _checked(Port(int(match["host"]), int(match["ctr"]), match["proto"] or "tcp", host_ip))


def _checked(port: Port) -> Port:
    for value in (port.host_port, port.container_port):
        if not 1 <= value <= 65535:
            raise InvalidInput(f"port {value} is out of range 1-65535")
    if port.protocol not in ("tcp", "udp", "sctp"):
        raise InvalidInput(f"bad protocol {port.protocol!r} (tcp, udp or sctp)")
    if port.host_ip:
        try:
            host = ipaddress.ip_address(port.host_ip)
        except ValueError:
            raise InvalidInput(f"bad host address {port.host_ip!r}") from None
        if host.version == 6 and host.is_loopback:
            raise InvalidInput(f"cannot publish on {port.host_ip}: the kernel drops ::1 traffic that would leave the "
                               "loopback (IPv6 has no route_localnet); use another host address")
    return port


@functools.cache
def nft_path() -> str:
    """The nft executable: on PATH, else in the sbin directories (a hook's PATH is unset or /bin:/usr/bin)."""
    import shutil

    found = shutil.which("nft") or shutil.which("nft", path=SBIN_PATH)
    if not found:
        raise OciError("nft is not installed (Debian package nftables)")
    return found


def _nft(commands: list[dict[str, Any]] | None = None, args: tuple[str, ...] = ()) -> Any:
    import subprocess

    argv = [nft_path(), "-j", *args] + (["-f", "-"] if commands is not None else [])
    data = json.dumps({"nftables": commands}).encode() if commands is not None else None
    proc = subprocess.run(argv, input=data, capture_output=True, check=False)
    if proc.returncode != 0:
        lines = proc.stderr.decode(errors="replace").strip().splitlines() or [f"exit {proc.returncode}"]
        raise OciError(f"nft: {lines[0]}")
    return json.loads(proc.stdout) if proc.stdout.strip() else None


def list_rules(table: str) -> list[dict[str, Any]]:
    """Every rule of the table as nft's JSON objects; [] if the table does not exist."""
    import subprocess

    proc = subprocess.run([nft_path(), "-j", "list", "table", "inet", table], capture_output=True, check=False)
    if proc.returncode != 0:
        return []
    return [item["rule"] for item in json.loads(proc.stdout)["nftables"] if "rule" in item]


def _match(left: Any, right: Any, op: str = "==") -> dict[str, Any]:
    return {"match": {"op": op, "left": left, "right": right}}


def _meta(key: str) -> dict[str, Any]:
    return {"meta": {"key": key}}


def _prefix(cidr: str) -> dict[str, Any]:
    net = ipaddress.ip_network(cidr)
    return {"prefix": {"addr": str(net.network_address), "len": net.prefixlen}}


def _saddr(family: str) -> dict[str, Any]:
    return {"payload": {"protocol": family, "field": "saddr"}}


def _family(cidr: str) -> str:
    return "ip6" if ":" in cidr else "ip"


def _rule(table: str, chain: str, expr: list[dict[str, Any]], comment: str) -> dict[str, Any]:
    return {"add": {"rule": {"family": "inet", "table": table, "chain": chain, "expr": expr, "comment": comment}}}


def _skeleton(table: str) -> list[dict[str, Any]]:
    base = {"family": "inet", "table": table}
    chains = [("forward", "filter", "forward", 0), ("prerouting", "nat", "prerouting", -100),
              ("output", "nat", "output", -100), ("postrouting", "nat", "postrouting", 100)]
    return [{"add": {"table": {"family": "inet", "name": table}}},
            {"add": {"set": {**base, "name": "bridges", "type": "ifname"}}}] + [
        {"add": {"chain": {**base, "name": name, "type": kind, "hook": hook, "prio": prio, "policy": "accept"}}}
        for name, kind, hook, prio in chains]


def network_comment(network: str) -> str:
    return f"ocikit net {network}"


def port_comment(network: str, host_ifname: str) -> str:
    return f"ocikit port {network} {host_ifname}"


def setup_network(net: dict[str, Any]) -> None:
    """Install the network's isolation and masquerade rules, unless they are there already."""
    table, bridge, comment = net["nftTable"], net["bridge"], network_comment(net["name"])
    if any(rule.get("comment") == comment for rule in list_rules(table)):
        return
    iif, oif = _meta("iifname"), _meta("oifname")
    commands = _skeleton(table) + [
        {"add": {"element": {"family": "inet", "table": table, "name": "bridges", "elem": [bridge]}}},
        _rule(table, "forward", [_match(iif, bridge), _match(oif, bridge, "!="), _match(oif, "@bridges"),
                                 {"drop": None}], comment),
        _rule(table, "postrouting", [_match(oif, bridge), _match(_saddr("ip"), _prefix("127.0.0.0/8")),
                                     {"masquerade": None}], comment),
    ]
    for key in ("subnet", "subnet6"):
        if key not in net:
            continue
        fam, subnet = _family(net[key]), _prefix(net[key])
        saddr = {"payload": {"protocol": fam, "field": "saddr"}}
        daddr = {"payload": {"protocol": fam, "field": "daddr"}}
        commands.append(_rule(table, "postrouting", [_match(oif, bridge), _match(saddr, subnet),
                                                     _match({"ct": {"key": "status"}}, "dnat", "in"),
                                                     {"masquerade": None}], comment))
        if net.get("masquerade", True):
            commands.append(_rule(table, "postrouting", [_match(oif, bridge, "!="), _match(saddr, subnet),
                                                         _match(daddr, subnet, "!="), {"masquerade": None}], comment))
    _nft(commands)


def port_targets(port: Port, address: str, address6: str | None) -> list[str]:
    """The container addresses a published port DNATs to: the family of its host address,
    or with none given, IPv4 and (when the container has one) IPv6."""
    if not port.host_ip:
        return [address] + ([address6] if address6 else [])
    if ":" not in port.host_ip:
        return [address]
    if address6 is None:
        raise InvalidInput(f"published port on {port.host_ip} needs an IPv6 address in the container")
    return [address6]


def add_ports(net: dict[str, Any], host_ifname: str, address: str, address6: str | None,
              ports: Sequence[Port]) -> None:
    """DNAT `ports` to the container `address` (and `address6` for IPv6, see port_targets)."""
    if not ports:
        return
    table, comment = net["nftTable"], port_comment(net["name"], host_ifname)
    commands = []
    for port in ports:
        for target in port_targets(port, address, address6):
            fam = "ip6" if ":" in target else "ip"
            expr: list[dict[str, Any]] = []
            if port.host_ip:
                expr.append(_match({"payload": {"protocol": fam, "field": "daddr"}}, port.host_ip))
            else:
                expr.append(_match(_meta("nfproto"), "ipv6" if fam == "ip6" else "ipv4"))
            expr += [
                _match({"fib": {"result": "type", "flags": ["daddr"]}}, "local"),
                _match({"payload": {"protocol": port.protocol, "field": "dport"}}, port.host_port),
                {"dnat": {"family": fam, "addr": target, "port": port.container_port}},
            ]
            for chain in ("prerouting", "output"):
                commands.append(_rule(table, chain, expr, comment))
    # The network's rules made the table and its chains. Adding a base chain again, even one
    # that exists, costs the commit an RCU grace period (~12 ms): only a table that went
    # missing since gets them again.
    try:
        _nft(commands)
    except OciError:
        _nft(_skeleton(table) + commands)


def delete_rules(table: str, comment: str, rules: list[dict[str, Any]] | None = None) -> int:
    """Delete every rule of the table carrying `comment`; how many there were."""
    rules = list_rules(table) if rules is None else rules
    doomed = [{"delete": {"rule": {"family": "inet", "table": table, "chain": r["chain"], "handle": r["handle"]}}}
              for r in rules if r.get("comment") == comment]
    if doomed:
        _nft(doomed)
    return len(doomed)


def teardown_network(net: dict[str, Any]) -> None:
    """Remove the network's rules and its bridge from the set; drop the table once it is empty."""
    table = net["nftTable"]
    rules = list_rules(table)
    if not rules and not _table_exists(table):
        return
    prefix = (network_comment(net["name"]), port_comment(net["name"], ""))
    mine = [r for r in rules if r.get("comment", "") == prefix[0] or r.get("comment", "").startswith(prefix[1])]
    commands: list[dict[str, Any]] = [
        {"delete": {"rule": {"family": "inet", "table": table, "chain": r["chain"], "handle": r["handle"]}}}
        for r in mine]
    if len(mine) == len(rules):
        commands = [{"delete": {"table": {"family": "inet", "name": table}}}]
    else:
        commands.append({"delete": {"element": {"family": "inet", "table": table, "name": "bridges",
                                                "elem": [net["bridge"]]}}})
    try:
        _nft(commands)
    except OciError:
        if len(mine) != len(rules):
            _nft(commands[:-1])  # the bridge was not in the set
        else:
            raise


def _table_exists(table: str) -> bool:
    import subprocess

    return subprocess.run([nft_path(), "list", "table", "inet", table], capture_output=True).returncode == 0
