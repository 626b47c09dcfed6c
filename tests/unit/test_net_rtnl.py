"""oci.net.rtnl: pyroute2's message classes over a socket of our own (read-only requests, any user)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest

from oci.errors import Conflict, NotFound, OciError
from oci.net import links, rtnl

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_the_cni_path_imports_neither_asyncio_nor_jsonschema():
    code = ("import sys; from oci.net import cni, endpoint, links; "
            "print(sorted(m for m in ('asyncio', 'jsonschema', 'dataclasses', 'tempfile') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_requests_and_replies():
    with rtnl.Rtnl() as nl:
        lo = nl.link("lo")
        assert lo["index"] == links.LOOPBACK_INDEX and lo.get("ifname") == "lo"
        assert "127.0.0.1/8" in {f"{a.get('address')}/{a['prefixlen']}" for a in nl.addresses(lo["index"])}
        assert nl.link("ocikit-none0") is None


def test_errors_carry_the_errno():
    with rtnl.Rtnl() as nl, pytest.raises(rtnl.NetlinkError) as caught:
        msg = rtnl.ifinfmsg()
        msg["index"] = 2**31 - 1  # no such link
        nl.request(msg, rtnl.RTM_DELLINK)
    assert caught.value.code in (errno.ENODEV, errno.EPERM)


@pytest.mark.parametrize("code, kind", [(errno.EEXIST, Conflict), (errno.ENODEV, NotFound), (errno.EPERM, OciError)])
def test_netlink_errors_become_ocikit_errors(code, kind):
    with pytest.raises(kind, match="veth x: ") as caught, links._guarded("veth x"):
        raise rtnl.NetlinkError(code, "Attribute failed policy validation")
    assert "Attribute failed policy validation" in caught.value.message
