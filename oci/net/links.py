"""Netlink work through pyroute2's messages: the bridge, a veth pair, eth0 inside the container's netns.

No `ip` commands: every change is a netlink request on an `rtnl.Rtnl` socket (pyroute2's
message classes on a socket of our own, see rtnl.py). A socket inside the container's
network namespace is opened by entering the namespace with setns(2) for the time of one
socket() call (the socket stays bound to that namespace), which avoids the child process
pyroute2 forks for `netns=`. The host end of a veth pair is created enslaved to the
bridge and up in one request; its IFLA_LINK names the peer's index inside the container.
"""

from __future__ import annotations

import contextlib
import errno
import os
from typing import Iterator, NamedTuple

from oci.errors import Conflict, NotFound, OciError
from oci.net import rtnl

IFA_F_NODAD = 0x02
IFF_UP = 0x1
LOOPBACK_INDEX = 1  # the kernel gives lo index 1 in every network namespace
RT_TABLE_MAIN, RTPROT_BOOT, RTN_UNICAST = 254, 3, 1
SYSCTL = "/proc/sys/net"


class Interface(NamedTuple):
    """What a container's interface should look like."""

    ifname: str
    host_ifname: str
    mac: str
    mtu: int
    addresses: list[str]  # "10.1.0.2/24", "fd00::2/64"
    gateways: list[str]  # one per family, default routes


class Bridge(NamedTuple):
    """A bridge on the host as ensure_bridge found or made it."""

    name: str
    ifindex: int  # (not `index`: a tuple's own method)
    mac: str
    created: bool


def _netlink_error(err: Exception) -> OciError:
    code = getattr(err, "code", None) or getattr(err, "errno", None)
    message = os.strerror(code) if code else str(err)
    detail = err.args[1] if len(err.args) > 1 and isinstance(err.args[1], str) else ""
    if detail and detail != message:  # the kernel's extended ack says which attribute or why
        message = f"{message} ({detail})"
    if code == errno.EEXIST:
        return Conflict(message)
    if code in (errno.ENODEV, errno.ENOENT):
        return NotFound(message)
    return OciError(message)


@contextlib.contextmanager
def _guarded(what: str) -> Iterator[None]:
    try:
        yield
    except OciError:
        raise
    except (rtnl.NetlinkError, OSError) as err:
        exc = _netlink_error(err)
        exc.message = f"{what}: {exc.message}"
        exc.args = (exc.message,)
        raise exc from err


@contextlib.contextmanager
def netlink(netns: str | None = None) -> Iterator[rtnl.Rtnl]:
    """An rtnetlink socket on the host, or inside the network namespace at path `netns`."""
    nl = rtnl.Rtnl() if netns is None else _socket_in(netns)
    try:
        yield nl
    finally:
        nl.close()


def _socket_in(netns: str) -> rtnl.Rtnl:
    from oci.linux.namespaces import run_in  # on use: a DEL never enters a namespace

    return run_in(netns, "network", rtnl.Rtnl)


def netns_path(netns: str | None = None, pid: int | None = None) -> str:
    """The namespace file for a path or a pid; NotFound if it does not exist."""
    path = netns if netns else f"/proc/{pid}/ns/net"
    if not os.path.exists(path):
        raise NotFound(f"{path}: no such network namespace")
    return path


def netns_id(path: str) -> str:
    """An identity of the namespace a path names (device:inode), to tell a reused path."""
    st = os.stat(path)
    return f"{st.st_dev}:{st.st_ino}"


def _sysctl(path: str, value: str) -> None:
    with contextlib.suppress(FileNotFoundError, PermissionError):
        with open(f"{SYSCTL}/{path}", "r+") as f:
            if f.read().strip() != value:
                f.seek(0)
                f.write(value)


def _link_msg(index: int = 0, up: bool = False, attrs: list | None = None) -> rtnl.ifinfmsg:
    msg = rtnl.ifinfmsg()
    msg["index"] = index
    if up:
        msg["flags"] = msg["change"] = IFF_UP
    msg["attrs"] = attrs or []
    return msg


def _add_address(nl: rtnl.Rtnl, index: int, cidr: str) -> None:
    address, prefix = cidr.split("/")
    msg = rtnl.ifaddrmsg()
    six = ":" in address
    msg["family"], msg["prefixlen"], msg["index"], msg["flags"] = (10 if six else 2), int(prefix), index, IFA_F_NODAD
    msg["attrs"] = [("IFA_ADDRESS", address)] if six else [("IFA_LOCAL", address), ("IFA_ADDRESS", address)]
    nl.request(msg, rtnl.RTM_NEWADDR, rtnl.CREATE)


def _add_default_route(nl: rtnl.Rtnl, index: int, gateway: str) -> None:
    msg = rtnl.rtmsg()
    msg["family"] = 10 if ":" in gateway else 2
    msg["table"], msg["proto"], msg["scope"], msg["type"] = RT_TABLE_MAIN, RTPROT_BOOT, 0, RTN_UNICAST
    msg["attrs"] = [("RTA_GATEWAY", gateway), ("RTA_OIF", index)]
    nl.request(msg, rtnl.RTM_NEWROUTE, rtnl.CREATE)


def _cidrs(nl: rtnl.Rtnl, index: int) -> set[str]:
    return {f"{a.get('address')}/{a['prefixlen']}" for a in nl.addresses(index)}


def ensure_bridge(nl: rtnl.Rtnl, name: str, addresses: list[str], mtu: int, mac: str) -> Bridge:
    """Bridge `name` with the gateway `addresses`, up; created with `mac` if it is missing.

    A bridge without a MAC of its own takes the lowest of its ports' and changes as they come
    and go; a fixed one keeps the MAC reported to CNI callers (and the hosts' ARP caches) true.
    """
    with _guarded(f"bridge {name}"):
        link = nl.link(name)
        created = False
        if link is None:
            attrs = [("IFLA_IFNAME", name), ("IFLA_MTU", mtu), ("IFLA_ADDRESS", mac),
                     ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "bridge")]})]
            try:
                nl.request(_link_msg(up=True, attrs=attrs), rtnl.RTM_NEWLINK, rtnl.CREATE)
                created = True
            except rtnl.NetlinkError as err:
                if err.code != errno.EEXIST:  # a concurrent add made it first
                    raise
            link = nl.link(name)
            if link is None:
                raise NotFound(f"bridge {name} vanished while it was set up")
        kind = link.get(("linkinfo", "kind")) or ""
        if kind != "bridge":
            raise Conflict(f"{name} exists and is not a bridge ({kind or 'no kind'})")
        index = link["index"]
        have = _cidrs(nl, index)
        for cidr in addresses:
            if cidr not in have:
                try:
                    _add_address(nl, index, cidr)
                except rtnl.NetlinkError as err:
                    if err.code != errno.EEXIST:
                        raise
        if not link["flags"] & IFF_UP:
            nl.request(_link_msg(index, up=True), rtnl.RTM_NEWLINK)
    # published ports from the host's 127.0.0.1 leave through the bridge with a loopback source
    _sysctl(f"ipv4/conf/{name}/route_localnet", "1")
    _sysctl("ipv4/ip_forward", "1")
    return Bridge(name, index, link.get("address") or "", created)


def delete_link(nl: rtnl.Rtnl, ifname: str) -> bool:
    """Delete a link by name if it exists; True if it did."""
    with _guarded(f"link {ifname}"):
        try:
            nl.request(_link_msg(attrs=[("IFLA_IFNAME", ifname)]), rtnl.RTM_DELLINK)
        except rtnl.NetlinkError as err:
            if err.code == errno.ENODEV:
                return False
            raise
        return True


def attach(nl: rtnl.Rtnl, bridge: Bridge, netns: str, iface: Interface) -> str:
    """Create the veth pair, put its peer in `netns` as `iface.ifname`, configure both ends.

    `nl` is a host socket. Returns the MAC address of the host end.
    """
    fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with _guarded(f"veth {iface.host_ifname}"):
            peer = {"attrs": [("IFLA_IFNAME", iface.ifname), ("IFLA_NET_NS_FD", fd), ("IFLA_MTU", iface.mtu),
                              ("IFLA_ADDRESS", iface.mac)]}
            info = [("IFLA_INFO_KIND", "veth"), ("IFLA_INFO_DATA", {"attrs": [("VETH_INFO_PEER", peer)]})]
            attrs = [("IFLA_IFNAME", iface.host_ifname), ("IFLA_MTU", iface.mtu), ("IFLA_MASTER", bridge.ifindex),
                     ("IFLA_LINKINFO", {"attrs": info})]
            nl.request(_link_msg(up=True, attrs=attrs), rtnl.RTM_NEWLINK, rtnl.CREATE)
    finally:
        os.close(fd)
    try:
        with _guarded(f"veth {iface.host_ifname}"):
            host = nl.link(iface.host_ifname)
            if host is None:
                raise NotFound(f"veth {iface.host_ifname} vanished while it was set up")
            # hairpin: with br_netfilter, a container reaching its own published port is bridged back out its port
            with open(f"/sys/class/net/{iface.host_ifname}/brport/hairpin_mode", "w") as f:
                f.write("1")
        with netlink(netns) as inside, _guarded(f"{netns}: {iface.ifname}"):
            inside.request(_link_msg(LOOPBACK_INDEX, up=True), rtnl.RTM_NEWLINK)
            index = host.get("link")
            if not index:
                found = inside.link(iface.ifname)
                index = found["index"] if found else 0
            for cidr in iface.addresses:
                _add_address(inside, index, cidr)
            inside.request(_link_msg(index, up=True), rtnl.RTM_NEWLINK)
            for gateway in iface.gateways:
                try:
                    _add_default_route(inside, index, gateway)
                except rtnl.NetlinkError as err:  # a default route of an earlier network stays the default
                    if err.code != errno.EEXIST:
                        raise
    except BaseException:
        delete_link(nl, iface.host_ifname)
        raise
    return host.get("address") or ""


def detach(host_ifname: str) -> bool:
    """Delete the host end of a veth pair (the kernel removes its peer); True if it existed."""
    with netlink() as nl:
        return delete_link(nl, host_ifname)


class Detaching:
    """`detach` in a thread of its own, started at once; `wait` returns its result or raises its error.

    The kernel takes ~15-30 ms to unregister a veth pair (RCU grace periods), most of a DEL:
    the request blocks its thread in the kernel without the GIL, so the caller's own records
    (leases, hosts files, nftables rules) are written meanwhile.
    """

    def __init__(self, host_ifname: str) -> None:
        import threading

        self.existed = False
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(host_ifname,), name=f"detach {host_ifname}")
        self.thread.start()

    def _run(self, host_ifname: str) -> None:
        try:
            self.existed = detach(host_ifname)
        except BaseException as err:  # handed to the waiting thread
            self.error = err

    def wait(self) -> bool:
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.existed


def container_addresses(netns: str, ifname: str) -> list[str]:
    """The addresses on `ifname` inside `netns` as CIDRs; NotFound if the interface is missing."""
    with netlink(netns) as nl, _guarded(f"{netns}: {ifname}"):
        link = nl.link(ifname)
        if link is None:
            raise NotFound(f"{netns}: no interface {ifname}")
        if not link["flags"] & IFF_UP:
            raise OciError(f"{netns}: {ifname} is down")
        return sorted(_cidrs(nl, link["index"]))


def link_exists(ifname: str) -> bool:
    """Whether a link of that name exists on the host."""
    with netlink() as nl, _guarded(f"link {ifname}"):
        return nl.link(ifname) is not None
