"""Which HTTP proxy, if any, a registry request goes through: HTTPS_PROXY, HTTP_PROXY and
NO_PROXY (or their lower-case spellings) as Go programs such as skopeo and docker read them.

* HTTPS_PROXY serves https registries and HTTP_PROXY plain http ones; a value is
  `[http://][user:password@]host[:port]` (port 80 by default). Proxies reached over TLS or
  SOCKS are refused by name rather than bypassed.
* NO_PROXY is a list (commas or spaces) of host names, IP addresses and CIDR blocks, each
  optionally with a port: a name matches itself and its subdomains (`.name`: subdomains only),
  `*` matches everything.
* `localhost` and loopback addresses never go through a proxy.
"""

from __future__ import annotations

import os

from oci.errors import UsageError

from .urls import split_host

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping


class Proxy:
    """A proxy to send requests through: where it listens, and the Proxy-Authorization it wants."""

    __slots__ = ("host", "port", "authorization")

    def __init__(self, host: str, port: int, authorization: str | None = None) -> None:
        self.host, self.port, self.authorization = host, port, authorization

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Proxy) and (self.host, self.port, self.authorization) == (
            other.host, other.port, other.authorization)

    def __repr__(self) -> str:
        return f"Proxy({self.host!r}, {self.port}{', with credentials' if self.authorization else ''})"


def proxy_for(scheme: str, netloc: str, environ: Mapping[str, str] | None = None) -> Proxy | None:
    """The proxy for a request to `scheme://netloc`, or None to connect directly."""
    env = os.environ if environ is None else environ
    name = "HTTPS_PROXY" if scheme == "https" else "HTTP_PROXY"
    value = env.get(name) or env.get(name.lower())
    if not value:
        return None
    host, port = split_host(netloc, 443 if scheme == "https" else 80)
    if _is_loopback(host) or _excluded(host, port, env.get("NO_PROXY") or env.get("no_proxy") or ""):
        return None
    return parse_proxy(value, name)


def parse_proxy(value: str, variable: str) -> Proxy:
    """A proxy URL as the environment gives it; UsageError names the variable when it is unusable."""
    scheme, sep, rest = value.strip().partition("://")
    if not sep:
        scheme, rest = "http", value.strip()
    if scheme.lower() != "http":
        raise UsageError(f"{variable}={value}: only http:// proxies are supported, not {scheme}://")
    rest = rest.split("/", 1)[0]
    credentials, at, address = rest.rpartition("@")
    try:
        host, port = split_host(address, 80)
    except ValueError:
        raise UsageError(f"{variable}={value}: not a proxy address") from None
    authorization = None
    if at:
        import base64

        user, _, password = credentials.partition(":")
        pair = f"{_unquote(user)}:{_unquote(password)}".encode()
        authorization = "Basic " + base64.b64encode(pair).decode()
    return Proxy(host, port, authorization)


def _excluded(host: str, port: int, no_proxy: str) -> bool:
    host = host.lower().rstrip(".")
    for entry in no_proxy.replace(",", " ").split():
        entry = entry.lower()
        if entry == "*":
            return True
        try:
            name, wanted = (entry, 0) if "/" in entry or _ip(entry) is not None else split_host(entry, 0)
        except ValueError:
            continue
        if wanted and wanted != port:
            continue
        if "/" in name or _ip(name) is not None:
            if _in_network(host, name):
                return True
        elif name.startswith("."):
            if host.endswith(name):
                return True
        elif host == name.rstrip(".") or host.endswith("." + name.rstrip(".")):
            return True
    return False


def _ip(text: str) -> object | None:
    import ipaddress

    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _in_network(host: str, entry: str) -> bool:
    import ipaddress

    address = _ip(host)
    if address is None:
        return False
    try:
        return address in ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return False


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    if not host[:1].isdigit() and ":" not in host:
        return False  # a name: no need for ipaddress
    address = _ip(host)
    return address is not None and address.is_loopback  # type: ignore[attr-defined]


def _unquote(text: str) -> str:
    """Percent-decoding, for credentials in a proxy URL."""
    if "%" not in text:
        return text
    raw = text.encode()
    out, i = bytearray(), 0
    while i < len(raw):
        if raw[i] == 0x25 and _is_hex(raw[i + 1:i + 3]):
            out.append(int(raw[i + 1:i + 3], 16))
            i += 3
        else:
            out.append(raw[i])
            i += 1
    return out.decode(errors="replace")


def _is_hex(pair: bytes) -> bool:
    return len(pair) == 2 and all(c in b"0123456789abcdefABCDEF" for c in pair)
