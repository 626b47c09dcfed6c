"""ADD of a remote URL: the file downloaded through ocikit's HTTP client (TLS, proxies,
retries), its digest checked against `--checksum` when given, its time the server's
Last-Modified (as Docker sets it).

Hostile servers: at most MAX_REDIRECTS redirects, to http or https URLs only (never
`file:`); a body larger than the build's `--max-size` is refused as soon as its
Content-Length says so, or once that many bytes came; a body shorter than its
Content-Length is an error, not a truncated file."""

from __future__ import annotations

import calendar
import email.utils
import hashlib
import os

from oci.errors import IntegrityError, InvalidInput, RegistryError
from oci.registry import urls
from oci.registry.http import Options, Transport

MAX_REDIRECTS = 10
MAX_SIZE = 64 << 30


def download(url: str, path: str, checksum: str | None, options: object = None, max_size: int = MAX_SIZE) -> str:
    """Fetch `url` into `path`; its sha256 digest (checked against `checksum`)."""
    algorithm, expected = None, None
    if checksum:
        algorithm, _, expected = checksum.partition(":")
        if algorithm not in ("sha256", "sha384", "sha512") or not expected:
            raise InvalidInput(f"--checksum={checksum}: expected sha256:HEX (or sha384, sha512)")
    transport = Transport(options if isinstance(options, Options) else Options())
    try:
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            response = transport.request("GET", current, {"Accept": "*/*"})
            if response.status in (301, 302, 303, 307, 308) and response.header("Location"):
                response.drain()
                current = urls.join(current, response.header("Location") or "")
                if not current.lower().startswith(("http://", "https://")):
                    raise RegistryError(f"{url}: redirected to {current}: only http and https URLs are followed")
                continue
            break
        else:
            raise RegistryError(f"{url}: more than {MAX_REDIRECTS} redirects")
        if response.status != 200:
            response.drain()
            raise RegistryError(f"{url}: HTTP {response.status}")
        length = response.header("Content-Length")
        if length is not None and length.strip().isdigit() and int(length) > max_size:
            response.close()
            raise IntegrityError(f"{url}: {int(length)} bytes, more than {max_size} (--max-size)")
        sha256 = hashlib.sha256()
        other = hashlib.new(algorithm) if algorithm and algorithm != "sha256" else None
        size = 0
        with open(path, "wb") as f:
            while chunk := _read(response, url):
                size += len(chunk)
                if size > max_size:
                    response.close()
                    raise IntegrityError(f"{url}: larger than {max_size} bytes (--max-size)")
                sha256.update(chunk)
                if other is not None:
                    other.update(chunk)
                f.write(chunk)
        modified = response.header("Last-Modified")
    finally:
        transport.close()
    if modified:
        parsed = email.utils.parsedate(modified)
        if parsed:
            stamp = calendar.timegm(parsed)
            os.utime(path, (stamp, stamp))
    actual = (other or sha256).hexdigest()
    if expected is not None and actual != expected:
        raise IntegrityError(f"{url}: digest {algorithm}:{actual} does not match --checksum={checksum}")
    return "sha256:" + sha256.hexdigest()


def _read(response: object, url: str) -> bytes:
    """The next part of the body; a connection cut short is a network error, named by the URL."""
    try:
        return response.read(1 << 20)  # type: ignore[attr-defined]
    except OSError as err:
        if err.filename:  # a file of ours, not the connection
            raise
        raise RegistryError(f"{url}: {err.strerror or err}") from None
