"""Networks of a state root: oci-net's networks in `ROOT/net`, with host-wide names made unique per root.

`bridge` is the default network, as Docker's: made on first use with a free /24 of
10.89.0.0/16 (no host route or address overlaps it). Every network's host bridge is
`br-` and 12 hex digits of the root and the name, as Docker names its bridges, and the
nftables table is `ocikit` for the default root and `ocikit_HEX` for any other, so two
state roots never meet in a global name.
"""

from __future__ import annotations

import ipaddress
import os
from typing import Any

from oci.errors import Conflict, InvalidInput, NotFound
from oci.fsutil import locked

from .root import StateRoot

DEFAULT_NETWORK = "bridge"
POOL = "10.89.0.0/16"
SPECIAL = ("none", "host")


def is_named(mode: str) -> bool:
    """Whether a --network value names a network (not none, host or ns:PATH)."""
    return mode not in SPECIAL and not mode.startswith(("ns:", "container:"))


def host_routes() -> list[ipaddress.IPv4Network]:
    """IPv4 networks the host routes (main table, from /proc: no process to start)."""
    found: list[ipaddress.IPv4Network] = []
    try:
        with open("/proc/net/route") as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return found
    for line in lines:
        fields = line.split()
        if len(fields) < 8 or fields[1] == "00000000":
            continue
        address = ipaddress.IPv4Address(int(fields[1], 16).to_bytes(4, "little"))
        mask = ipaddress.IPv4Address(int(fields[7], 16).to_bytes(4, "little"))
        try:
            found.append(ipaddress.IPv4Network(f"{address}/{mask}", strict=False))
        except ValueError:
            continue
    return found


def free_subnet(root: StateRoot, taken: list[str]) -> str:
    """A /24 of 10.89.0.0/16 that no host route and no network of ours overlaps; roots start apart."""
    busy = host_routes() + [ipaddress.IPv4Network(t) for t in taken]
    candidates = list(ipaddress.IPv4Network(POOL).subnets(new_prefix=24))
    start = 0 if root.default else int(root.tag, 16) % len(candidates)
    for net in candidates[start:] + candidates[:start]:
        if not any(net.overlaps(b) for b in busy):
            return str(net)
    raise Conflict("no free /24 left in 10.89.0.0/16 for the default network (create it with --subnet)")


def create(root: StateRoot, name: str, subnet: str | None = None, *, gateway: str | None = None,
           internal: bool = False, labels: dict[str, str] | None = None) -> dict[str, Any]:
    from oci.net import networks

    if name in SPECIAL:
        raise Conflict(f"network with name {name} already exists (it is predefined)")
    os.makedirs(root.net, mode=0o755, exist_ok=True)
    with locked(os.path.join(root.sub(".network.lock"))):
        if os.path.exists(os.path.join(root.net, "networks", f"{name}.json")):
            raise Conflict(f"network with name {name} already exists")
        chosen = subnet or free_subnet(root, [n["subnet"] for n in networks.list_all(root.net)])
        doc = networks.build(name, chosen, bridge=root.bridge_name(name), gateway=gateway,
                             masquerade=not internal, nft_table=root.nft_table)
        return networks.create(root.net, doc)


def load(root: StateRoot, name: str) -> dict[str, Any]:
    from oci.net import networks

    try:
        return networks.load(root.net, name)
    except NotFound:
        raise NotFound(f"network {name} not found") from None


def ensure(root: StateRoot, name: str) -> dict[str, Any]:
    """The network `name`; the default one is made when missing."""
    try:
        return load(root, name)
    except NotFound:
        if name != DEFAULT_NETWORK:
            raise
    try:
        return create(root, name)
    except Conflict:
        return load(root, name)  # made by a concurrent run meanwhile


def list_all(root: StateRoot) -> list[dict[str, Any]]:
    from oci.net import networks

    return networks.list_all(root.net)


def attachments(root: StateRoot, net: dict[str, Any]) -> dict[str, Any]:
    from oci.net import endpoint

    return endpoint.attached(root.net, net)


def remove(root: StateRoot, name: str) -> None:
    from oci.net import endpoint, networks

    net = load(root, name)
    if attachments(root, net):
        raise Conflict(f"error while removing network: network {name} has active endpoints")
    endpoint.teardown(root.net, net)
    networks.delete(root.net, name)


def connect(root: StateRoot, name: str, cid: str, pid: int, *, ifname: str, hostname: str, aliases: list[str],
            hosts_file: str | None) -> dict[str, Any]:
    """Attach a running container (its init `pid`) to one more network."""
    from oci.net import endpoint

    net = load(root, name)
    request = endpoint.Request(cid, f"/proc/{pid}/ns/net", ifname, name=hostname, aliases=aliases,
                               hosts_file=hosts_file)
    return endpoint.connect(root.net, net, request)


def holding(root: StateRoot, cid: str) -> list[str]:
    """The networks of the root where the container holds a lease (lease files read, no netlink imported)."""
    from oci.net import ipam

    prefix = cid + "/"
    return [name for name in ipam.LeaseStore.networks(root.net)
            if any(key.startswith(prefix) for key in ipam.LeaseStore(root.net, name).read())]


def disconnect_all(root: StateRoot, cid: str) -> int:
    """Release every lease of the container in every network of the root; how many there were."""
    names = holding(root, cid)
    if not names:
        return 0
    from oci.net import endpoint

    return sum(len(endpoint.disconnect(root.net, load(root, name), cid)) for name in names)


def leases_of(root: StateRoot, cid: str) -> dict[str, dict[str, Any]]:
    """network name -> the container's lease on it (eth0 first), for inspect and port."""
    from oci.net import endpoint

    found: dict[str, dict[str, Any]] = {}
    for net in list_all(root):
        for key, lease in sorted(endpoint.attached(root.net, net).items()):
            if key.split("/", 1)[0] == cid and net["name"] not in found:
                found[net["name"]] = {**lease, "network": net}
    return found


def parse_publish(spec: str, free_port: Any) -> str:
    """Docker's -p forms oci-net does not read, made explicit: `80`, `IP::80` get a free host port."""
    text, _, proto = spec.partition("/")
    parts = text.rsplit(":", 2) if not text.startswith("[") else _split_v6(text)
    if len(parts) == 1:
        host_ip, host_port, container = "", "", parts[0]
    elif len(parts) == 2:
        host_ip, (host_port, container) = "", parts
    else:
        host_ip, host_port, container = parts
    if "-" in container or "-" in host_port:
        raise InvalidInput(f"-p {spec}: port ranges are not supported")
    if not container.isdigit():
        raise InvalidInput(f"invalid port specification: {spec!r}")
    if not host_port:
        host_port = str(free_port(host_ip))
    prefix = f"{host_ip}:" if host_ip else ""
    return f"{prefix}{host_port}:{container}" + (f"/{proto}" if proto else "")


def _split_v6(text: str) -> list[str]:
    end = text.index("]")
    rest = text[end + 2:].split(":")
    return [text[: end + 1], *rest]

