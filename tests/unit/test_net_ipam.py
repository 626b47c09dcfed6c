"""oci.net.ipam: allocation from a subnet, static requests, the locked lease store."""

from __future__ import annotations

import ipaddress
import json
import multiprocessing

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oci.errors import Conflict, InvalidInput
from oci.net import ipam

NET = ipaddress.ip_network("10.213.7.0/29")  # .1 gateway, .2-.6 hosts, .7 broadcast


def test_lowest_free_address_skips_used_and_reserved():
    assert ipam.allocate(NET, [], ["10.213.7.1"]) == "10.213.7.2"
    assert ipam.allocate(NET, ["10.213.7.2", "10.213.7.3"], ["10.213.7.1"]) == "10.213.7.4"


def test_exhaustion_is_a_conflict():
    used = [f"10.213.7.{i}" for i in range(2, 7)]
    with pytest.raises(Conflict, match="no free address"):
        ipam.allocate(NET, used, ["10.213.7.1"])


def test_static_requests():
    assert ipam.allocate(NET, [], ["10.213.7.1"], "10.213.7.5") == "10.213.7.5"
    with pytest.raises(Conflict):
        ipam.allocate(NET, ["10.213.7.5"], [], "10.213.7.5")
    for bad in ("10.213.7.0", "10.213.7.7", "10.213.8.2", "nonsense"):
        with pytest.raises(InvalidInput):
            ipam.allocate(NET, [], [], bad)


def test_ipv6_allocation_scans_only_the_low_addresses():
    net6 = ipaddress.ip_network("fd00:213::/64")
    assert ipam.allocate(net6, ["fd00:213::2"], ["fd00:213::1"]) == "fd00:213::3"


def test_parse_subnet():
    assert str(ipam.parse_subnet("10.213.0.0/16")) == "10.213.0.0/16"
    for bad in ("10.213.0.1/16", "10.213.0.0/31", "x"):
        with pytest.raises(InvalidInput):
            ipam.parse_subnet(bad)


@settings(max_examples=50, deadline=None)
@given(st.sets(st.integers(min_value=2, max_value=254), max_size=200))
def test_allocation_never_returns_a_used_address(taken):
    net = ipaddress.ip_network("10.213.9.0/24")
    used = [f"10.213.9.{i}" for i in taken]
    got = ipam.allocate(net, used, ["10.213.9.1"])
    assert got not in used and got != "10.213.9.1" and ipaddress.ip_address(got) in net
    assert int(got.rsplit(".", 1)[1]) == min(set(range(2, 255)) - taken)


def _claim(args):
    state, i = args
    store = ipam.LeaseStore(state, "net")
    with store.transaction() as leases:
        address = ipam.allocate(NET.supernet(new_prefix=24), ipam.used_addresses(leases, 4), ["10.213.7.1"])
        leases[f"c{i}/eth0"] = {"addresses": [f"{address}/24"]}
    return address


def test_concurrent_transactions_never_share_an_address(tmp_path):
    with multiprocessing.get_context("fork").Pool(8) as pool:
        got = pool.map(_claim, [(str(tmp_path), i) for i in range(24)])
    assert len(set(got)) == 24
    stored = json.loads((tmp_path / "leases" / "net.json").read_text())
    assert len(stored) == 24


def test_a_failed_transaction_changes_nothing(tmp_path):
    store = ipam.LeaseStore(str(tmp_path), "net")
    with store.transaction() as leases:
        leases["a/eth0"] = {"addresses": ["10.213.7.2/29"]}
    with pytest.raises(RuntimeError), store.transaction() as leases:
        leases.clear()
        raise RuntimeError("boom")
    assert list(store.read()) == ["a/eth0"]
