"""Connect, disconnect, check and garbage-collect a container's attachment to a network.

The single implementation behind the `oci-net` commands, the OCI hook and the CNI plugin.
An attachment is keyed `CONTAINER_ID/IFNAME`; its lease (ipam.LeaseStore) records
everything needed to undo it: addresses, the host end of the veth pair, the published
ports, the names and the hosts file. A connect holds the network's lease lock from the
allocation to the last hosts file, so concurrent connects and disconnects see each other
whole; if any step fails, what was done is undone and no lease is recorded.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import time
from typing import Any, Iterable, NamedTuple, Sequence

from oci.errors import Conflict, InvalidInput, NotFound, OciError
from oci.net import hosts, ipam, links, nat


class Request(NamedTuple):
    """What a caller asks for when connecting a container."""

    container_id: str
    netns: str
    ifname: str = "eth0"
    ip: str | None = None
    ip6: str | None = None
    mac: str | None = None
    ports: Sequence[nat.Port] = ()
    name: str | None = None
    aliases: Sequence[str] = ()
    hosts_file: str | None = None


def key_of(container_id: str, ifname: str) -> str:
    return f"{container_id}/{ifname}"


def host_ifname(network: str, key: str) -> str:
    """The host end of the veth pair: a stable 15-character name from network and key."""
    from oci.digest import hash_bytes  # small inputs: CPython's own SHA-256, no OpenSSL to load

    return "oci" + hash_bytes(f"{network}/{key}".encode())[:12]


def mac_for(address: str) -> str:
    """A locally administered MAC derived from the IPv4 address (as Docker does)."""
    octets = ipaddress.IPv4Address(address).packed
    return "02:42:" + ":".join(f"{b:02x}" for b in octets)


def connect(state: str, net: dict[str, Any], req: Request) -> dict[str, Any]:
    """Attach the container to the network; the lease record (addresses, ports, names...)."""
    for name in ([req.name] if req.name else []) + list(req.aliases):
        hosts.check_name(name)
    key = key_of(req.container_id, req.ifname)
    netns_id = links.netns_id(req.netns)
    if netns_id == links.netns_id("/proc/self/ns/net"):
        raise InvalidInput(f"{req.netns} is the host's own network namespace, not a container's")
    store = ipam.LeaseStore(state, net["name"])
    with store.transaction() as leases:
        if key in leases:
            raise Conflict(f"{key} is already connected to network {net['name']}")
        if net.get("cni"):  # under the lease lock: a concurrent last DEL cannot remove it meanwhile
            from oci.net import networks

            networks.keep_cni_record(state, net)
        subnet = ipaddress.ip_network(net["subnet"])
        address = ipam.allocate(subnet, ipam.used_addresses(leases, 4), [net["gateway"]], req.ip)
        cidrs, gateways = [f"{address}/{subnet.prefixlen}"], [net["gateway"]]
        if "subnet6" in net:
            subnet6 = ipaddress.ip_network(net["subnet6"])
            address6 = ipam.allocate(subnet6, ipam.used_addresses(leases, 6), [net["gateway6"]], req.ip6)
            cidrs.append(f"{address6}/{subnet6.prefixlen}")
            gateways.append(net["gateway6"])
        lease: dict[str, Any] = {
            "containerId": req.container_id, "ifname": req.ifname, "netns": req.netns, "netnsId": netns_id,
            "hostIfname": host_ifname(net["name"], key), "nftTable": net["nftTable"],
            "mac": req.mac or mac_for(address),
            "addresses": cidrs, "gateways": gateways, "ports": [p.to_json() for p in req.ports],
            "name": req.name, "aliases": list(req.aliases), "hostsFile": req.hosts_file,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
        }
        iface = links.Interface(req.ifname, lease["hostIfname"], lease["mac"], net["mtu"], cidrs, gateways)
        with links.netlink() as nl:
            bridge = links.ensure_bridge(nl, net["bridge"], _bridge_addresses(net), net["mtu"], mac_for(net["gateway"]))
            if bridge.created:
                try:
                    nat.setup_network(net)
                except BaseException:  # no bridge without its rules: the next connect sets up both
                    links.delete_link(nl, net["bridge"])
                    raise
            lease["bridgeMac"], lease["hostMac"] = bridge.mac, links.attach(nl, bridge, req.netns, iface)
        try:
            ip4, ip6 = _addresses(lease)
            nat.add_ports(net, lease["hostIfname"], ip4, ip6, req.ports)
            leases[key] = lease
            _refresh_hosts(net["name"], leases, extra=[])
        except BaseException:
            leases.pop(key, None)
            _undo(net, lease)
            raise
    return lease


def _addresses(lease: dict[str, Any]) -> tuple[str, str | None]:
    """The lease's IPv4 address and its IPv6 address or None."""
    bare = [cidr.split("/")[0] for cidr in lease["addresses"]]
    return next(a for a in bare if ":" not in a), next((a for a in bare if ":" in a), None)


def _bridge_addresses(net: dict[str, Any]) -> list[str]:
    addresses = [f"{net['gateway']}/{ipaddress.ip_network(net['subnet']).prefixlen}"]
    if "subnet6" in net:
        addresses.append(f"{net['gateway6']}/{ipaddress.ip_network(net['subnet6']).prefixlen}")
    return addresses


def _undo(net: dict[str, Any], lease: dict[str, Any]) -> None:
    with contextlib.suppress(OciError):
        links.detach(lease["hostIfname"])
    _undo_rules(net, lease)


def _undo_rules(net: dict[str, Any], lease: dict[str, Any]) -> None:
    if lease.get("ports"):
        with contextlib.suppress(OciError):  # the lease's table: the one the rules were added to
            table = lease.get("nftTable") or net["nftTable"]
            nat.delete_rules(table, nat.port_comment(net["name"], lease["hostIfname"]))


def _retire(state: str, net: dict[str, Any]) -> None:
    """A CNI network's last attachment is gone: remove its rules, its bridge and its record.

    Called with the network's lease lock held, so no ADD of the network runs meanwhile (the
    next one sets everything up again). Only a network oci-net has a CNI record of is
    retired, with the bridge and table the record names, and the bridge only when no other
    stored network uses it.
    """
    from oci.net import networks

    record = networks.cni_record(state, net["name"])
    if record is None:
        return
    with contextlib.suppress(OciError):
        nat.teardown_network(record)
    if not networks.bridge_users(state, record["bridge"], besides=record["name"]):
        with contextlib.suppress(OciError), links.netlink() as nl:
            links.delete_link(nl, record["bridge"])
    networks.forget_cni_record(state, net["name"])


def _refresh_hosts(network: str, leases: dict[str, Any], extra: Iterable[str]) -> None:
    """Rewrite the network's block in every member's hosts file; remove it from `extra` files."""
    entries = []
    for lease in leases.values():
        if lease.get("name") or lease.get("aliases"):
            names = ([lease["name"]] if lease.get("name") else []) + list(lease.get("aliases") or [])
            for cidr in lease["addresses"]:
                entries.append((cidr.split("/")[0], names))
    for lease in leases.values():
        path = lease.get("hostsFile")
        if path and os.path.exists(os.path.dirname(path) or "."):
            hosts.update(path, network, entries)
    for path in extra:
        if path and os.path.exists(path):
            hosts.update(path, network, None)


def disconnect(state: str, net: dict[str, Any], container_id: str, ifname: str | None = None) -> list[dict[str, Any]]:
    """Detach the container (every interface of it if `ifname` is None); the leases released.

    Idempotent: an attachment that is not recorded is still cleaned of its veth, as a
    CNI DEL after a lost lease requires. The veths are deleted while the leases, rules and
    hosts files are written (links.Detaching); the call returns once both are done, as the
    CNI bridge plugin's DEL does, which releases the address before it deletes the link.
    """
    store = ipam.LeaseStore(state, net["name"])
    with store.transaction() as leases:
        keys = [k for k, v in leases.items() if v["containerId"] == container_id and ifname in (None, v["ifname"])]
        released = [leases.pop(k) for k in keys]
        deleting = [links.Detaching(lease["hostIfname"]) for lease in released]
        lost = None
        if not released and ifname is not None:
            lost = links.Detaching(host_ifname(net["name"], key_of(container_id, ifname)))
        for lease in released:
            _undo_rules(net, lease)
        if released:
            _refresh_hosts(net["name"], leases, extra=[lease.get("hostsFile") for lease in released])
        if net.get("cni") and not leases:
            for job in deleting:  # the bridge goes after its ports, still under the lock
                with contextlib.suppress(OciError):
                    job.wait()
            deleting = []
            _retire(state, net)
    for job in deleting:
        with contextlib.suppress(OciError):  # the lease is released whatever became of its veth
            job.wait()
    if lost is not None:
        with contextlib.suppress(OciError):  # best effort: DEL succeeds whatever is missing
            lost.wait()
    return released


def find(state: str, net: dict[str, Any], container_id: str, ifname: str) -> dict[str, Any]:
    """The lease of an attachment; NotFound if it is not recorded."""
    lease = ipam.LeaseStore(state, net["name"]).read().get(key_of(container_id, ifname))
    if lease is None:
        raise NotFound(f"{key_of(container_id, ifname)} is not connected to network {net['name']}")
    return lease


def check(state: str, net: dict[str, Any], container_id: str, ifname: str) -> dict[str, Any]:
    """Verify an attachment is whole: lease, netns, addresses, veth, bridge, port rules."""
    lease = find(state, net, container_id, ifname)
    if not os.path.exists(lease["netns"]) or links.netns_id(lease["netns"]) != lease["netnsId"]:
        raise NotFound(f"network namespace {lease['netns']} of {container_id} is gone")
    have = set(links.container_addresses(lease["netns"], ifname))
    missing = [cidr for cidr in lease["addresses"] if cidr not in have]
    if missing:
        raise OciError(f"{container_id}: {ifname} lacks {', '.join(missing)}")
    for link in (net["bridge"], lease["hostIfname"]):
        if not links.link_exists(link):
            raise OciError(f"{container_id}: link {link} is missing on the host")
    rules = nat.list_rules(net["nftTable"])
    if not any(rule.get("comment") == nat.network_comment(net["name"]) for rule in rules):
        raise OciError(f"the nftables rules of network {net['name']} are missing from table {net['nftTable']}")
    if lease.get("ports"):
        comment = nat.port_comment(net["name"], lease["hostIfname"])
        count = sum(1 for rule in rules if rule.get("comment") == comment)
        address, address6 = _addresses(lease)
        want = 2 * sum(len(nat.port_targets(nat.Port.from_json(p), address, address6)) for p in lease["ports"])
        if count != want:
            raise OciError(f"{container_id}: {count} nftables rules for its published ports, {want} expected")
    return lease


def stale(lease: dict[str, Any]) -> bool:
    """Whether the lease's network namespace no longer exists (or the path names another one)."""
    try:
        return links.netns_id(lease["netns"]) != lease["netnsId"]
    except OSError:
        return True


def gc(state: str, net: dict[str, Any], valid: set[str] | None = None) -> list[dict[str, Any]]:
    """Release the leases whose netns is gone, or whose key is not in `valid` when given."""
    store = ipam.LeaseStore(state, net["name"])
    with store.transaction() as leases:
        doomed = [k for k, v in leases.items() if (valid is not None and k not in valid) or stale(v)]
        released = [leases.pop(k) for k in doomed]
        for lease in released:
            _undo(net, lease)
        if released:
            _refresh_hosts(net["name"], leases, extra=[lease.get("hostsFile") for lease in released])
        if net.get("cni") and not leases:
            _retire(state, net)
    return released


def lease_networks(state: str) -> list[dict[str, Any]]:
    """Networks known only by their leases (CNI networks, whose definition the runtime keeps):
    the name and nftables table, all that gc needs."""
    from oci.net import networks

    stored = {n["name"] for n in networks.list_all(state)}
    found = []
    for name in ipam.LeaseStore.networks(state):
        if name not in stored:
            leases = ipam.LeaseStore(state, name).read()
            table = next((v["nftTable"] for v in leases.values() if "nftTable" in v), networks.DEFAULT_TABLE)
            found.append({"name": name, "nftTable": table})
    return found


def attached(state: str, net: dict[str, Any]) -> dict[str, Any]:
    """Every recorded attachment of the network."""
    return ipam.LeaseStore(state, net["name"]).read()


def teardown(state: str, net: dict[str, Any]) -> None:
    """Remove the network's bridge, rules and lease store; Conflict while containers are attached."""
    store = ipam.LeaseStore(state, net["name"])
    if store.read():
        live = [k for k, v in store.read().items() if not stale(v)]
        if live:
            raise Conflict(f"network {net['name']} has {len(live)} attached container(s): {', '.join(live[:5])}")
        gc(state, net)
    with links.netlink() as nl:
        links.delete_link(nl, net["bridge"])
    nat.teardown_network(net)
    store.remove()
