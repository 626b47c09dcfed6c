"""The URLs a registry client handles: split one for a request, resolve a Location or Link
against the URL it came with (RFC 3986 section 5.2), encode a query string, and split a
`host[:port]` (the registry's, a proxy's, a NO_PROXY entry's).

Only http and https URLs are split; fragments are dropped, as HTTP never sends them.
"""

from __future__ import annotations

UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
SCHEME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+-.")


def split(url: str) -> tuple[str, str, str]:
    """(scheme, host[:port], request target) of an http or https URL; ValueError otherwise."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("http", "https"):
        raise ValueError(f"not an http(s) URL: {url!r}")
    rest = rest.partition("#")[0]
    end = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    netloc, target = rest[:end], rest[end:]
    if not netloc or "@" in netloc:
        raise ValueError(f"no host, or credentials, in URL {url!r}")
    if not target.startswith("/"):
        target = "/" + target
    return scheme, netloc, target


def join(base: str, reference: str) -> str:
    """`reference` resolved against the absolute URL `base` (RFC 3986 5.2.2, without fragments)."""
    reference = reference.partition("#")[0]
    if _scheme_of(reference):
        scheme, rest = reference.split(":", 1)
        authority, path, query = _parts(rest)
        return _compose(scheme.lower(), authority, _remove_dot_segments(path), query)
    scheme, rest = base.split(":", 1)
    base_authority, base_path, base_query = _parts(rest.partition("#")[0])
    authority, path, query = _parts(reference)
    if authority is not None:
        return _compose(scheme, authority, _remove_dot_segments(path), query)
    if not path:
        return _compose(scheme, base_authority, base_path, query if query is not None else base_query)
    if not path.startswith("/"):
        if base_authority is not None and not base_path:
            path = "/" + path
        else:
            path = base_path[: base_path.rfind("/") + 1] + path
    return _compose(scheme, base_authority, _remove_dot_segments(path), query)


def encode_query(fields: dict[str, str] | list[tuple[str, str]]) -> str:
    """`a=1&b=2` of a dict or of pairs (a name may repeat), every byte but the unreserved ones
    percent-encoded; also the form body of application/x-www-form-urlencoded."""
    pairs = fields.items() if isinstance(fields, dict) else fields
    return "&".join(f"{_quote(name)}={_quote(value)}" for name, value in pairs)


def _quote(text: str) -> str:
    return "".join(chr(b) if b in UNRESERVED else f"%{b:02X}" for b in text.encode())


def _scheme_of(reference: str) -> str:
    scheme, colon, _ = reference.partition(":")
    if colon and scheme[:1].isalpha() and scheme.isascii() and set(scheme) <= SCHEME_CHARS:
        return scheme
    return ""


def _parts(rest: str) -> tuple[str | None, str, str | None]:
    """(authority or None, path, query or None) of what follows a scheme's colon."""
    rest, question, query = rest.partition("?")
    authority = None
    if rest.startswith("//"):
        end = rest.find("/", 2)
        end = len(rest) if end < 0 else end
        authority, rest = rest[2:end], rest[end:]
    return authority, rest, query if question else None


def _compose(scheme: str, authority: str | None, path: str, query: str | None) -> str:
    url = f"{scheme}:"
    if authority is not None:
        url += f"//{authority}"
    url += path
    return url + (f"?{query}" if query is not None else "")


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4: `.` and `..` segments resolved, never above the root."""
    if "." not in path:
        return path
    output: list[str] = []
    keep = 1 if path.startswith("/") else 0  # the empty segment before an absolute path's first slash
    segments = path.split("/")
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment == ".":
            if last:
                output.append("")
        elif segment == "..":
            if len(output) > keep:
                output.pop()
            if last:
                output.append("")
        else:
            output.append(segment)
    result = "/".join(output)
    if path.startswith("/") and not result.startswith("/"):
        result = "/" + result
    return result


def is_loopback(netloc: str) -> bool:
    """True for `localhost`, 127.0.0.0/8 and ::1, with or without a port: a registry there is
    this machine's (Docker, podman and go-containerregistry reach it with plain HTTP)."""
    host = netloc[1:].partition("]")[0] if netloc.startswith("[") else netloc.partition(":")[0]
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost") or host == "::1":
        return True
    parts = host.split(".")
    return len(parts) == 4 and parts[0] == "127" and all(p.isdigit() and int(p) < 256 for p in parts)


def split_host(netloc: str, default_port: int) -> tuple[str, int]:
    """('host', port) of `host`, `host:port`, `[v6]` or `[v6]:port`; ValueError otherwise."""
    if netloc.startswith("["):
        host, bracket, rest = netloc[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"invalid host {netloc!r}")
        port = rest[1:]
    else:
        host, _, port = netloc.partition(":")
        if ":" in port:
            raise ValueError(f"an IPv6 address needs brackets: {netloc!r}")
    if not host or (port and not (port.isdigit() and 0 < int(port) < 65536)):
        raise ValueError(f"invalid host {netloc!r}")
    return host, int(port) if port else default_port
