"""oci.registry.proxy: HTTPS_PROXY, HTTP_PROXY and NO_PROXY as Go programs (skopeo, docker) read them."""

from __future__ import annotations

import base64

import pytest

from oci.errors import UsageError
from oci.registry.proxy import Proxy, proxy_for

PROXIES = {"HTTPS_PROXY": "http://proxy.test:3128", "HTTP_PROXY": "proxy.test:8080"}


@pytest.mark.parametrize("scheme, netloc, expected", [
    ("https", "registry.test", Proxy("proxy.test", 3128)),
    ("http", "registry.test:5000", Proxy("proxy.test", 8080)),
    ("https", "localhost:5000", None),  # loopback never goes through a proxy
    ("https", "127.0.0.1:5000", None),
    ("http", "[::1]:5000", None),
    ("https", "127.1.2.3", None),
])
def test_scheme_picks_the_variable_and_loopback_is_direct(scheme, netloc, expected):
    assert proxy_for(scheme, netloc, PROXIES) == expected


def test_lower_case_variables_and_none_set():
    assert proxy_for("https", "r.test", {"https_proxy": "p.test:1"}) == Proxy("p.test", 1)
    assert proxy_for("https", "r.test", {"HTTP_PROXY": "p.test:1"}) is None  # not for https
    assert proxy_for("https", "r.test", {}) is None


@pytest.mark.parametrize("no_proxy, netloc, direct", [
    ("*", "registry.test", True),
    ("registry.test", "registry.test", True),
    ("registry.test", "eu.registry.test", True),  # a name matches its subdomains
    (".registry.test", "registry.test", False),  # a leading dot: subdomains only
    (".registry.test", "eu.registry.test", True),
    ("registry.test", "myregistry.test", False),
    ("other.test, registry.test:5000", "registry.test:5000", True),
    ("registry.test:5000", "registry.test:6000", False),
    ("10.0.0.0/8", "10.1.2.3:5000", True),
    ("10.0.0.0/8", "192.0.2.1", False),
    ("192.0.2.1", "192.0.2.1:443", True),
    ("2001:db8::1", "[2001:db8::1]:5000", True),
    ("REGISTRY.TEST", "registry.test", True),
    ("garbage:port, registry.test", "registry.test", True),
])
def test_no_proxy(no_proxy, netloc, direct):
    proxy = proxy_for("https", netloc, {**PROXIES, "NO_PROXY": no_proxy})
    assert (proxy is None) == direct


def test_credentials_become_proxy_authorization():
    proxy = proxy_for("https", "r.test", {"HTTPS_PROXY": "http://us%40er:p%3Ass@proxy.test:3128/"})
    assert proxy is not None and (proxy.host, proxy.port) == ("proxy.test", 3128)
    assert base64.b64decode(proxy.authorization.split()[1]) == b"us@er:p:ss"


@pytest.mark.parametrize("value", ["https://proxy.test:3128", "socks5://proxy.test:1080", "http://proxy.test:x"])
def test_unusable_proxies_are_refused_by_name(value):
    with pytest.raises(UsageError, match="HTTPS_PROXY"):
        proxy_for("https", "r.test", {"HTTPS_PROXY": value})
