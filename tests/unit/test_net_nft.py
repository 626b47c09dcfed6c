"""Finding nft: OCI hooks run oci-net with an empty environment, where PATH is /bin:/usr/bin at best."""

import os
import shutil

import pytest

from oci.errors import OciError
from oci.net import nat


@pytest.fixture(autouse=True)
def fresh_lookup():
    nat.nft_path.cache_clear()
    yield
    nat.nft_path.cache_clear()


@pytest.mark.skipif(not shutil.which("nft", path=nat.SBIN_PATH), reason="nftables is not installed")
def test_nft_is_found_in_sbin_without_path(monkeypatch):
    monkeypatch.delenv("PATH")
    found = nat.nft_path()
    assert os.path.dirname(found) in nat.SBIN_PATH.split(":") and os.access(found, os.X_OK)


def test_missing_nft_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(nat, "SBIN_PATH", str(tmp_path))
    with pytest.raises(OciError, match="nft is not installed"):
        nat.nft_path()
