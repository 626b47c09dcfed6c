"""A synchronous rtnetlink socket: pyroute2's message classes over a plain AF_NETLINK socket.

pyroute2 0.9's IPRoute runs on asyncio: importing it costs ~60-100 ms and every process pays
an event loop and its teardown, while a hook or CNI plugin makes a dozen requests and exits.
So requests go through a socket of our own, one at a time: pyroute2's `ifinfmsg`,
`ifaddrmsg` and `rtmsg` encode them and its `Marshal` decodes the replies (attributes,
nested link info, extended-ack error messages); nothing here packs netlink attributes.

The pyroute2 package is bound without running its `__init__`, which imports every
subsystem (IPRoute, NDB, the mocks) before anything is asked of it.
"""

from __future__ import annotations

import errno
import importlib.util
import socket
import sys
import types
from typing import Any

NETLINK_ROUTE = 0
SOL_NETLINK = 270
NETLINK_EXT_ACK = 11
RECV_SIZE = 1 << 16


def _bind_package() -> None:
    # A module object for the package without executing its __init__: submodules import
    # what they need themselves.
    if "pyroute2" in sys.modules:
        return
    spec = importlib.util.find_spec("pyroute2")
    if spec is None or not spec.submodule_search_locations:
        return  # not installed: the import below names what is missing
    stub = types.ModuleType("pyroute2")
    stub.__path__ = list(spec.submodule_search_locations)
    stub.__spec__ = spec
    stub.__file__ = spec.origin
    sys.modules["pyroute2"] = stub


_bind_package()

from pyroute2.netlink import (  # noqa: E402
    NLM_F_ACK,
    NLM_F_CREATE,
    NLM_F_DUMP,
    NLM_F_EXCL,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
)
from pyroute2.netlink.exceptions import NetlinkError  # noqa: E402
from pyroute2.netlink.marshal import Marshal  # noqa: E402
from pyroute2.netlink.rtnl import (  # noqa: E402
    RTM_DELLINK,
    RTM_GETADDR,
    RTM_GETLINK,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTM_NEWROUTE,
)
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg  # noqa: E402
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg  # noqa: E402
from pyroute2.netlink.rtnl.rtmsg import rtmsg  # noqa: E402

__all__ = ["NetlinkError", "Rtnl", "ifaddrmsg", "ifinfmsg", "rtmsg", "CREATE"]

CREATE = NLM_F_CREATE | NLM_F_EXCL


class _Marshal(Marshal):
    msg_map = {RTM_NEWLINK: ifinfmsg, RTM_DELLINK: ifinfmsg, RTM_NEWADDR: ifaddrmsg, RTM_NEWROUTE: rtmsg}


class Rtnl:
    """One rtnetlink socket, bound to the network namespace of the thread that opens it."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        self.sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)  # errors come with the kernel's message
        self.marshal = _Marshal()
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, msg: Any, msg_type: int, flags: int = 0, dump: bool = False) -> list[Any]:
        """Send one request (a dump if `dump`); its reply messages (none for an ack). Raises NetlinkError.

        NLM_F_DUMP shares bits with NLM_F_EXCL (same values, other meaning for new objects),
        so a dump is said by `dump`, not read from `flags`."""
        self.seq += 1
        header = msg["header"]
        header["type"], header["sequence_number"], header["pid"] = msg_type, self.seq, 0
        header["flags"] = NLM_F_REQUEST | flags | (NLM_F_DUMP if dump else NLM_F_ACK)
        msg.encode()
        self.sock.send(msg.data)
        replies: list[Any] = []
        while True:
            for reply in self.marshal.parse(self.sock.recv(RECV_SIZE)):
                if reply["header"]["sequence_number"] != self.seq:
                    continue
                error = reply["header"].get("error")
                if isinstance(error, NetlinkError | OSError):
                    raise error
                if error is not None:  # pyroute2 could not decode the reply
                    raise NetlinkError(errno.EBADMSG, f"undecodable netlink reply: {error!r}")
                if reply["header"]["type"] in (NLMSG_DONE, NLMSG_ERROR):
                    return replies
                replies.append(reply)

    def link(self, ifname: str) -> Any | None:
        """The link named `ifname` (an ifinfmsg), or None."""
        msg = ifinfmsg()
        msg["attrs"] = [("IFLA_IFNAME", ifname)]
        try:
            return self.request(msg, RTM_GETLINK)[0]
        except NetlinkError as err:
            if err.code == 19:  # ENODEV
                return None
            raise

    def addresses(self, index: int) -> list[Any]:
        """The addresses (ifaddrmsg) of the link with that index."""
        return [a for a in self.request(ifaddrmsg(), RTM_GETADDR, dump=True) if a["index"] == index]
