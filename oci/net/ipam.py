"""IP address management: allocation from a subnet, static requests, a locked file store.

The leases of one network live in `STATE/leases/NETWORK.json`, a map from attachment key
(`CONTAINER_ID/IFNAME`) to the lease record (its addresses plus whatever the caller keeps
about the attachment). Every change happens inside `LeaseStore.transaction()`: an flock on
`NETWORK.lock`, the file re-read inside the lock, and an atomic replace (temp, fsync,
rename) on success, so concurrent adds never hand out one address twice and an
interrupted add leaves the previous file intact.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
from typing import Any, Iterable, Iterator

from oci.errors import Conflict, InvalidInput
from oci.fsutil import locked, write_atomic

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_SCAN = 1 << 16  # an IPv6 /64 is never scanned whole: the first free among the low addresses


def parse_subnet(text: str) -> Network:
    """A subnet in CIDR form, host bits allowed to be zero only; InvalidInput otherwise."""
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as err:
        raise InvalidInput(f"bad subnet {text!r}: {err}") from None
    if net.num_addresses < 4:
        raise InvalidInput(f"subnet {text} is too small (at least 4 addresses)")
    return net


def default_gateway(subnet: Network) -> Address:
    """The first host address of the subnet, given to the bridge."""
    return subnet.network_address + 1


def allocate(subnet: Network, used: Iterable[str], reserved: Iterable[str] = (), requested: str | None = None) -> str:
    """An address of `subnet` not in `used` or `reserved`: `requested` if given, else the lowest free one."""
    taken = {ipaddress.ip_address(a) for a in used} | {ipaddress.ip_address(a) for a in reserved}
    last = subnet.broadcast_address if subnet.version == 4 else None
    if requested is not None:
        try:
            want = ipaddress.ip_address(requested)
        except ValueError as err:
            raise InvalidInput(f"bad address {requested!r}: {err}") from None
        if want not in subnet or want == subnet.network_address or want == last:
            raise InvalidInput(f"address {requested} is not a host address of {subnet}")
        if want in taken:
            raise Conflict(f"address {requested} is already in use in {subnet}")
        return str(want)
    first = int(subnet.network_address) + 1
    end = min(int(subnet.broadcast_address), first + MAX_SCAN)
    if last is not None:
        end = min(end, int(last) - 1)
    for value in range(first, end + 1):
        candidate = ipaddress.ip_address(value)
        if candidate not in taken:
            return str(candidate)
    raise Conflict(f"no free address left in {subnet}")


def used_addresses(leases: dict[str, Any], version: int) -> list[str]:
    """Every address of one family held by a lease."""
    out = []
    for lease in leases.values():
        for cidr in lease.get("addresses", []):
            address = cidr.split("/")[0]
            if (":" in address) == (version == 6):
                out.append(address)
    return out


class LeaseStore:
    """The leases of one network, in a JSON file changed only under its lock."""

    def __init__(self, state_dir: str, network: str) -> None:
        self.folder = os.path.join(state_dir, "leases")
        self.path = os.path.join(self.folder, f"{network}.json")
        self.lock = os.path.join(self.folder, f"{network}.lock")

    @staticmethod
    def networks(state_dir: str) -> list[str]:
        """The names of the networks that have a lease file."""
        try:
            names = os.listdir(os.path.join(state_dir, "leases"))
        except FileNotFoundError:
            return []
        return sorted(n[:-5] for n in names if n.endswith(".json") and not n.startswith("."))

    def read(self) -> dict[str, Any]:
        """The leases as they are now (no lock: a consistent snapshot thanks to atomic replaces)."""
        try:
            with open(self.path, "rb") as f:
                data = json.load(f)
        except FileNotFoundError:
            return {}
        except (ValueError, UnicodeDecodeError) as err:
            raise InvalidInput(f"{self.path}: not valid JSON: {err}") from None
        if not isinstance(data, dict):
            raise InvalidInput(f"{self.path}: /: not an object")
        return data

    @contextlib.contextmanager
    def transaction(self) -> Iterator[dict[str, Any]]:
        """Yield the leases under the lock; changes to the dict are saved if the block completes."""
        os.makedirs(self.folder, mode=0o700, exist_ok=True)
        with locked(self.lock):
            leases = self.read()
            before = json.dumps(leases, sort_keys=True)
            yield leases
            after = json.dumps(leases, sort_keys=True)
            if after != before:
                write_atomic(self.path, after.encode() + b"\n", mode=0o600)

    def remove(self) -> None:
        """Forget every lease of the network (when the network is removed)."""
        for path in (self.path, self.lock):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
