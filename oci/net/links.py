"""Netlink work through pyroute2: the bridge, a veth pair, eth0 inside the container's netns.

No `ip` commands: every change is a netlink request. A socket inside the container's
network namespace is opened by entering the namespace with setns(2) for the time of one
socket() call (the socket stays bound to that namespace), which avoids the child process
pyroute2 forks for `netns=`. pyroute2 is imported without its package `__init__` (which
loads every pyroute2 subsystem, ~40 ms) because a runtime hook pays it on every start.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import importlib.util
import os
import socket
import sys
import types
from dataclasses import dataclass, field
from typing import Any, Iterator

from oci.errors import Conflict, InvalidInput, NotFound, OciError

CLONE_NEWNET = 0x40000000
NETLINK_ROUTE = 0
IFA_F_NODAD = 0x02
IFF_UP = 0x1
SYSCTL = "/proc/sys/net"


@dataclass
class Interface:
    """What a container's interface should look like."""

    ifname: str
    host_ifname: str
    mac: str
    mtu: int
    addresses: list[str] = field(default_factory=list)  # "10.1.0.2/24", "fd00::2/64"
    gateways: list[str] = field(default_factory=list)  # one per family, default routes


def _iproute_class() -> Any:
    # Bind the packages without running their __init__ (which import every subsystem and
    # the mocks); the submodules we load import what they need themselves.
    for package in ("pyroute2", "pyroute2.iproute"):
        if package not in sys.modules:
            spec = importlib.util.find_spec(package)
            if spec is None or not spec.submodule_search_locations:
                break
            stub = types.ModuleType(package)
            stub.__path__ = list(spec.submodule_search_locations)
            stub.__spec__ = spec
            stub.__file__ = spec.origin
            sys.modules[package] = stub
    from pyroute2.iproute.linux import IPRoute

    return IPRoute


def _netlink_error(err: Exception) -> OciError:
    code = getattr(err, "code", None)
    message = os.strerror(code) if code else str(err)
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
    except Exception as err:  # pyroute2 raises NetlinkError (an OSError subclass) and friends
        if type(err).__name__ in ("NetlinkError", "NetlinkDumpInterrupted") or isinstance(err, OSError):
            exc = _netlink_error(err)
            exc.message = f"{what}: {exc.message}"
            exc.args = (exc.message,)
            raise exc from err
        raise


@contextlib.contextmanager
def iproute(netns: str | None = None) -> Iterator[Any]:
    """An IPRoute on the host, or inside the network namespace at path `netns`."""
    cls = _iproute_class()
    if netns is None:
        ipr = cls(groups=0)
    else:
        ipr = cls(groups=0, fileno=_socket_in(netns))
    try:
        yield ipr
    finally:
        ipr.close()


def _socket_in(netns: str) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        target = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFound(f"{netns}: no such network namespace") from None
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            raise InvalidInput(f"{netns}: not a network namespace ({os.strerror(ctypes.get_errno())})")
        try:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_ROUTE)
        finally:
            if libc.setns(home, CLONE_NEWNET) != 0:
                raise OciError(f"cannot return to the host network namespace: {os.strerror(ctypes.get_errno())}")
        return sock.detach()
    finally:
        os.close(target)
        os.close(home)


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


def _index(ipr: Any, ifname: str) -> int | None:
    found = ipr.link_lookup(ifname=ifname)
    return found[0] if found else None


def _sysctl(path: str, value: str) -> None:
    with contextlib.suppress(FileNotFoundError, PermissionError):
        with open(f"{SYSCTL}/{path}", "r+") as f:
            if f.read().strip() != value:
                f.seek(0)
                f.write(value)


def ensure_bridge(ipr: Any, name: str, addresses: list[str], mtu: int) -> bool:
    """Create bridge `name` with the gateway `addresses` if it is missing; True if created."""
    with _guarded(f"bridge {name}"):
        index = _index(ipr, name)
        created = False
        if index is None:
            try:
                ipr.link("add", ifname=name, kind="bridge", mtu=mtu)
                created = True
            except Exception as err:
                if getattr(err, "code", None) != errno.EEXIST:  # a concurrent add made it first
                    raise
            index = _index(ipr, name)
        else:
            link = ipr.get_links(index)[0]
            kind = (link.get(("linkinfo", "kind")) or "")
            if kind != "bridge":
                raise Conflict(f"{name} exists and is not a bridge ({kind or 'no kind'})")
        have = {f"{a.get('address')}/{a['prefixlen']}" for a in ipr.get_addr(index=index)}
        for cidr in addresses:
            if cidr not in have:
                address, prefix = cidr.split("/")
                try:
                    ipr.addr("add", index=index, address=address, prefixlen=int(prefix), flags=IFA_F_NODAD)
                except Exception as err:
                    if getattr(err, "code", None) != errno.EEXIST:
                        raise
        ipr.link("set", index=index, state="up")
    # published ports from the host's 127.0.0.1 leave through the bridge with a loopback source
    _sysctl(f"ipv4/conf/{name}/route_localnet", "1")
    _sysctl("ipv4/ip_forward", "1")
    return created


def delete_link(ipr: Any, ifname: str) -> bool:
    """Delete a link by name if it exists; True if it did."""
    with _guarded(f"link {ifname}"):
        index = _index(ipr, ifname)
        if index is None:
            return False
        try:
            ipr.link("del", index=index)
        except Exception as err:
            if getattr(err, "code", None) == errno.ENODEV:
                return False
            raise
        return True


def attach(ipr: Any, bridge: str, netns: str, iface: Interface) -> tuple[str, str]:
    """Create the veth pair, put its peer in `netns` as `iface.ifname`, configure both ends.

    `ipr` is a host IPRoute. Returns the MAC addresses of the bridge and of the host end.
    """
    fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with _guarded(f"veth {iface.host_ifname}"):
            master = _index(ipr, bridge)
            if master is None:
                raise NotFound(f"bridge {bridge} does not exist")
            ipr.link("add", ifname=iface.host_ifname, kind="veth", mtu=iface.mtu,
                     peer={"ifname": iface.ifname, "net_ns_fd": fd, "mtu": iface.mtu, "address": iface.mac})
            host = _index(ipr, iface.host_ifname)
            ipr.link("set", index=host, master=master, state="up")
            # hairpin: with br_netfilter, a container reaching its own published port is bridged back out its port
            with open(f"/sys/class/net/{iface.host_ifname}/brport/hairpin_mode", "w") as f:
                f.write("1")
            macs = (ipr.get_links(master)[0].get("address"), ipr.get_links(host)[0].get("address"))
    finally:
        os.close(fd)
    try:
        with iproute(netns) as inside, _guarded(f"{netns}: {iface.ifname}"):
            lo = _index(inside, "lo")
            if lo is not None:
                inside.link("set", index=lo, state="up")
            index = _index(inside, iface.ifname)
            for cidr in iface.addresses:
                address, prefix = cidr.split("/")
                inside.addr("add", index=index, address=address, prefixlen=int(prefix), flags=IFA_F_NODAD)
            inside.link("set", index=index, state="up")
            for gateway in iface.gateways:
                dst = "::/0" if ":" in gateway else "0.0.0.0/0"
                try:
                    inside.route("add", dst=dst, gateway=gateway, oif=index)
                except Exception as err:  # a default route of an earlier network stays the default
                    if getattr(err, "code", None) != errno.EEXIST:
                        raise
    except BaseException:
        delete_link(ipr, iface.host_ifname)
        raise
    return macs


def detach(host_ifname: str) -> bool:
    """Delete the host end of a veth pair (the kernel removes its peer); True if it existed."""
    with iproute() as ipr:
        return delete_link(ipr, host_ifname)


def container_addresses(netns: str, ifname: str) -> list[str]:
    """The addresses on `ifname` inside `netns` as CIDRs; NotFound if the interface is missing."""
    with iproute(netns) as ipr, _guarded(f"{netns}: {ifname}"):
        index = _index(ipr, ifname)
        if index is None:
            raise NotFound(f"{netns}: no interface {ifname}")
        link = ipr.get_links(index)[0]
        if not link["flags"] & IFF_UP:
            raise OciError(f"{netns}: {ifname} is down")
        return [f"{a.get('address')}/{a['prefixlen']}" for a in ipr.get_addr(index=index)]


def link_exists(ifname: str) -> bool:
    """Whether a link of that name exists on the host."""
    with iproute() as ipr:
        return _index(ipr, ifname) is not None

