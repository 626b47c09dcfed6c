"""Named networks: JSON documents under `STATE_DIR/networks/`, validated by network.schema.json.

The state directory defaults to /var/lib/ocikit/net; the environment variable
OCIKIT_NET_STATE_DIR or an explicit argument overrides it. Creating and removing take
`STATE_DIR/networks.lock`, so two networks never share a name, a bridge or a subnet.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
from typing import Any

from oci.errors import Conflict, InvalidInput, NotFound
from oci.fsutil import locked, write_atomic
from oci.net import ipam, validation

DEFAULT_STATE_DIR = "/var/lib/ocikit/net"
STATE_ENV = "OCIKIT_NET_STATE_DIR"
DEFAULT_TABLE = "ocikit"
DEFAULT_MTU = 1500
IFNAMSIZ = 15


def state_dir(explicit: str | None = None) -> str:
    """The state directory: `explicit`, else $OCIKIT_NET_STATE_DIR, else /var/lib/ocikit/net."""
    return explicit or os.environ.get(STATE_ENV) or DEFAULT_STATE_DIR


def build(name: str, subnet: str, *, subnet6: str | None = None, bridge: str | None = None,
          gateway: str | None = None, gateway6: str | None = None, mtu: int = DEFAULT_MTU,
          masquerade: bool = True, nft_table: str = DEFAULT_TABLE, memo_dir: str | None = None) -> dict[str, Any]:
    """A network document from its parts, checked (schema and semantics), not stored."""
    net4 = ipam.parse_subnet(subnet)
    if net4.version != 4:
        raise InvalidInput(f"--subnet {subnet} is not an IPv4 subnet (use --subnet6)")
    doc: dict[str, Any] = {
        "name": name,
        "bridge": bridge or name,
        "subnet": str(net4),
        "gateway": _gateway(net4, gateway),
        "mtu": mtu,
        "masquerade": masquerade,
        "nftTable": nft_table,
    }
    if subnet6:
        net6 = ipam.parse_subnet(subnet6)
        if net6.version != 6:
            raise InvalidInput(f"--subnet6 {subnet6} is not an IPv6 subnet")
        doc["subnet6"] = str(net6)
        doc["gateway6"] = _gateway(net6, gateway6)
    elif gateway6:
        raise InvalidInput("a gateway6 needs a subnet6")
    if len(doc["bridge"]) > IFNAMSIZ:
        raise InvalidInput(f"bridge name {doc['bridge']!r} is longer than {IFNAMSIZ} characters (use --bridge)")
    validation.validate(doc, "network", f"network {name}", memo_dir=memo_dir)
    return doc


def _gateway(subnet: ipam.Network, gateway: str | None) -> str:
    if gateway is None:
        return str(ipam.default_gateway(subnet))
    try:
        address = ipaddress.ip_address(gateway)
    except ValueError as err:
        raise InvalidInput(f"bad gateway {gateway!r}: {err}") from None
    if address not in subnet or address in (subnet.network_address, subnet.broadcast_address):
        raise InvalidInput(f"gateway {gateway} is not a host address of {subnet}")
    return str(address)


def _path(state: str, name: str) -> str:
    return os.path.join(state, "networks", f"{name}.json")


def create(state: str, doc: dict[str, Any]) -> dict[str, Any]:
    """Store a new network; Conflict if its name, bridge or subnet is taken by another one.

    A bridge name that is already a link on the host is refused too: removing the network
    deletes its bridge, which must then be one that oci-net made.
    """
    import datetime

    from oci.net import links

    if links.link_exists(doc["bridge"]):
        raise Conflict(f"a link named {doc['bridge']} exists on the host already (choose another --bridge)")
    doc = {**doc, "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
    os.makedirs(os.path.join(state, "networks"), mode=0o755, exist_ok=True)
    with locked(os.path.join(state, "networks.lock")):
        if os.path.exists(_path(state, doc["name"])):
            raise Conflict(f"network {doc['name']} already exists")
        for other in list_all(state):
            if other["bridge"] == doc["bridge"]:
                raise Conflict(f"bridge {doc['bridge']} already belongs to network {other['name']}")
            for key in ("subnet", "subnet6"):
                if key in doc and key in other and _overlap(doc[key], other[key]):
                    raise Conflict(f"{key} {doc[key]} overlaps {other[key]} of network {other['name']}")
        write_atomic(_path(state, doc["name"]), json.dumps(doc, indent=2).encode() + b"\n")
    return doc


def _overlap(a: str, b: str) -> bool:
    return ipaddress.ip_network(a).overlaps(ipaddress.ip_network(b))


def load(state: str, name: str) -> dict[str, Any]:
    """A stored network, validated; NotFound if there is none of that name."""
    if "/" in name or name.startswith("."):
        raise InvalidInput(f"bad network name {name!r}")
    path = _path(state, name)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise NotFound(f"network {name} does not exist (in {state})") from None
    try:
        doc = json.loads(raw)
    except ValueError as err:
        raise InvalidInput(f"{path}: not valid JSON: {err}") from None
    validation.validate(doc, "network", path, memo_dir=os.path.join(state, "validated"))
    return doc


def list_all(state: str) -> list[dict[str, Any]]:
    """Every stored network, sorted by name."""
    folder = os.path.join(state, "networks")
    try:
        names = sorted(n[:-5] for n in os.listdir(folder) if n.endswith(".json") and not n.startswith("."))
    except FileNotFoundError:
        return []
    return [load(state, name) for name in names]


def delete(state: str, name: str) -> None:
    """Forget a stored network (the caller tears down its bridge and rules first)."""
    with locked(os.path.join(state, "networks.lock")):
        try:
            os.unlink(_path(state, name))
        except FileNotFoundError:
            raise NotFound(f"network {name} does not exist (in {state})") from None


# -- networks made through the CNI plugin ------------------------------------------------
#
# A CNI network's definition lives in the runtime's configuration, not here; oci-net keeps a
# record of it (the network document with `"cni": true`) from the first ADD, written inside
# the network's lease lock, so that `ls`, `inspect`, `gc` and `rm` see it, and so that the
# last DEL (or a GC that releases the last lease) knows which bridge and rules to remove.
# A network of the same name made with `oci-net create` is never overwritten or removed.


def cni_record(state: str, name: str) -> dict[str, Any] | None:
    """The stored record of a CNI network, or None (none, or a network made by `create`)."""
    try:
        with open(_path(state, name), "rb") as f:
            doc = json.loads(f.read())
    except (OSError, ValueError):
        return None
    return doc if type(doc) is dict and doc.get("cni") is True else None


def keep_cni_record(state: str, net: dict[str, Any]) -> None:
    """Store (or refresh) the record of a CNI network, unless it is there already as it is."""
    path = _path(state, net["name"])
    try:
        with open(path, "rb") as f:
            stored = json.loads(f.read())
    except FileNotFoundError:
        stored = None
    except (OSError, ValueError):
        stored = {"cni": True}  # unreadable: replace it
    if type(stored) is dict:
        if stored.get("cni") is not True:
            return  # a network of that name made by `oci-net create`: its own document stays
        if {k: v for k, v in stored.items() if k != "created"} == {**net, "cni": True}:
            return
    import time

    created = stored.get("created") if type(stored) is dict else None
    doc = {**net, "cni": True, "created": created or time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())}
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    write_atomic(path, json.dumps(doc, indent=2).encode() + b"\n")


def forget_cni_record(state: str, name: str) -> None:
    """Remove a CNI network's record (after its bridge and rules are gone)."""
    if cni_record(state, name) is not None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(_path(state, name))


def bridge_users(state: str, bridge: str, besides: str) -> list[str]:
    """Stored networks other than `besides` whose bridge is `bridge`."""
    folder = os.path.join(state, "networks")
    users = []
    with contextlib.suppress(FileNotFoundError):
        for entry in os.listdir(folder):
            if not entry.endswith(".json") or entry.startswith(".") or entry[:-5] == besides:
                continue
            with contextlib.suppress(OSError, ValueError):
                with open(os.path.join(folder, entry), "rb") as f:
                    if json.loads(f.read()).get("bridge") == bridge:
                        users.append(entry[:-5])
    return users
