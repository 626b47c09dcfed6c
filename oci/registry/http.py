"""HTTP for registries: pooled keep-alive connections, TLS, timeouts, retries with backoff.

`Transport.request()` sends one request and returns a `Response` whose body is read by
the caller (streaming, or completely with a size cap). Answers 408, 429 and 5xx, and
connection errors, are retried with exponential backoff (honouring `Retry-After`) as long
as the request body can be sent again. A response whose body was read to the end gives
its connection back to the pool for the next request to the same host.

The wire format is `wire`'s (our own HTTP/1.1 framing with caps for hostile servers); what
a TLS connection trusts and presents is `tls`'s, imported (with `ssl`) only when a registry
may be reached with TLS (or a TLS error is described): a plain HTTP client (`--insecure`)
does not pay for it.
"""

from __future__ import annotations

import os
import sys
import time
from _socket import SHUT_RDWR
from _thread import allocate_lock
from collections import namedtuple

from oci import log
from oci.errors import IntegrityError, NotFound, RegistryError

from . import urls
from .proxy import proxy_for
from .urls import split_host
from .wire import Connection

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl
    from typing import Callable, Protocol

    from . import wire

    class Payload(Protocol):
        """A request body read as it is sent, and sent again from where it started when retried:
        a file, SentBytes."""

        def read(self, n: int = -1, /) -> bytes: ...

        def seekable(self) -> bool: ...

        def tell(self) -> int: ...

        def seek(self, offset: int, whence: int = 0, /) -> int: ...

    Body = bytes | Payload | None

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
CERT_DIR_ENV = "OCIKIT_CERT_DIR"
SYSTEM_CERT_DIRS = ("/etc/containers/certs.d", "/etc/docker/certs.d")


def transient(status: int) -> bool:
    """True for an answer (or a connection failure, 0) that asking again may mend; other 4xx
    answers say the request itself is refused."""
    return status == 0 or status in RETRY_STATUSES or status >= 500
MAX_RETRY_AFTER = 60.0  # seconds: a registry asking for longer is treated as failing
BLOCK = 1 << 20
# What a kept-alive connection the server has closed meanwhile fails with (RemoteDisconnected
# is a ConnectionResetError): the request is sent again at once on a new connection.
STALE_CONNECTION_ERRORS = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class Options(namedtuple("Options", ["insecure", "cert_dir", "timeout", "retries", "backoff", "max_backoff",
                                     "tls_verify", "insecure_hosts"],
                         defaults=(False, None, 30.0, 5, 0.5, 10.0, True, frozenset()))):
    """How to reach registries; the same for fetch and push.

    Which scheme a registry host gets (`Transport.scheme_for`): plain HTTP with `insecure`;
    TLS without verification, falling back to plain HTTP for a registry that does not speak
    TLS, with `tls_verify` False or for a host in `insecure_hosts` (registries.conf's
    `insecure = true`), as skopeo and podman do; plain HTTP first for a loopback or localhost
    registry without a certificate directory, switching to TLS when the registry answers that
    it speaks TLS (Docker, podman and go-containerregistry treat them as insecure); else TLS,
    verified."""

    __slots__ = ()
    insecure: bool  # plain HTTP instead of TLS (default: False)
    cert_dir: str | None  # *.crt CA certificates, *.cert/*.key client certificate (default: None)
    timeout: float  # seconds without progress on a connection (default: 30)
    retries: int  # attempts after the first, for retryable failures (default: 5)
    backoff: float  # first delay in seconds, doubled each attempt (default: 0.5)
    max_backoff: float  # (default: 10)
    tls_verify: bool  # verify TLS certificates (default: True)
    insecure_hosts: frozenset[str]  # host[:port]s reached without verification, plain HTTP allowed


class SentBytes:
    """Bytes as a request body read block by block, telling `sent(count)` how far it got: the
    progress display moves with the bytes on the wire, not only when a blob is done. Seekable,
    so a failed request is sent again as a bytes body is."""

    def __init__(self, data: bytes, sent: Callable[[int], None]) -> None:
        self._data = memoryview(data)
        self._sent = sent
        self._pos = 0

    def __len__(self) -> int:
        return len(self._data)

    def read(self, n: int = -1) -> bytes:
        end = len(self._data) if n is None or n < 0 else min(len(self._data), self._pos + n)
        block = self._data[self._pos:end].tobytes()
        self._pos = end
        if block:
            self._sent(self._pos)
        return block

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self._pos = offset if whence == 0 else (self._pos + offset if whence == 1 else len(self._data) + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos


class HttpError(RegistryError):
    """An unexpected HTTP answer; `status` is the HTTP status code (0 for connection errors)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class Response:
    """An HTTP answer whose body the caller reads; the connection returns to the pool at EOF."""

    def __init__(self, raw: wire.Response, url: str, release: Callable[[bool], None]) -> None:
        self._raw = raw
        self._release = release
        self._done = False
        self.url = url
        self.status = raw.status
        self.headers = raw.headers

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)

    @property
    def length(self) -> int | None:
        """The Content-Length, when the server sent one."""
        value = self.headers.get("Content-Length")
        return int(value) if value and value.isdigit() else None

    @property
    def unframed(self) -> bool:
        """True when the body simply ends with the connection (neither Content-Length nor
        chunked): then an early end may be a cut, not the body's end."""
        return "content-length" not in self.headers and "transfer-encoding" not in self.headers

    def read(self, n: int = -1) -> bytes:
        if self._done:
            return b""
        data = self._raw.read(n if n is not None and n >= 0 else None)
        if not data or n is None or n < 0 or self._raw.isclosed():
            self._finish()
        return data

    def readinto(self, buffer: memoryview | bytearray) -> int:
        if self._done:
            return 0
        count = self._raw.readinto(buffer)
        if not count or self._raw.isclosed():
            self._finish()
        return count

    def readable(self) -> bool:
        return True

    def read_all(self, limit: int, what: str = "response") -> bytes:
        """The whole body; IntegrityError when it is larger than `limit` bytes."""
        length = self.length
        if length is not None and length > limit:
            self.close()
            raise IntegrityError(f"{what}: {length} bytes exceeds the size cap of {limit}")
        chunks, total = [], 0
        while chunk := self.read(min(BLOCK, limit + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                self.close()
                raise IntegrityError(f"{what}: more than the size cap of {limit} bytes")
        return b"".join(chunks)

    def drain(self, limit: int = 1 << 16) -> None:
        """Read a small leftover body so the connection can be reused, or drop the connection."""
        try:
            length = self.length
            if length is not None and length > limit:
                self.close()
                return
            self.read_all(limit)
        except (OSError, IntegrityError):
            self.close()

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            reusable = not self._raw.will_close
            self._raw.close()  # the connection takes no new request while its response is open
            self._release(reusable)

    def close(self) -> None:
        """Stop reading: the connection is dropped unless the body was read to the end."""
        if not self._done:
            self._done = True
            self._raw.close()
            self._release(False)

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Transport:
    """Connections to registries, pooled per scheme and host, shared by threads."""

    def __init__(self, options: Options | None = None) -> None:
        self.options = options or Options()
        self._idle: dict[tuple[str, str], list[Connection]] = {}
        self._busy: set[Connection] = set()
        self._lock = allocate_lock()
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._schemes: dict[str, str] = {}  # host[:port] -> "http" or "https"
        self._aborted = False
        # (method, url) -> (headers, connection, whether it was kept alive) of requests sent ahead
        self._ahead: dict[tuple[str, str], tuple[dict[str, str], Connection, bool]] = {}

    def scheme_for(self, netloc: str) -> str:
        """The scheme a registry host is reached with (see Options), decided on first use and
        changed when the registry shows it speaks the other one."""
        scheme = self._schemes.get(netloc)
        if scheme is None:
            if self.options.insecure:
                scheme = "http"
            elif not self.verifies(netloc):
                scheme = "https"
            elif urls.is_loopback(netloc) and not self._tls_configured(netloc):
                scheme = "http"
            else:
                scheme = "https"
            self._schemes[netloc] = scheme
        return scheme

    def verifies(self, netloc: str) -> bool:
        """True when TLS certificates of this host are verified."""
        hosts = self.options.insecure_hosts
        return self.options.tls_verify and not (hosts and (netloc in hosts or split_host(netloc, 0)[0] in hosts))

    def _tls_configured(self, netloc: str) -> bool:
        """True when a certificate directory applies to this host: it is meant to be reached with TLS."""
        if self.options.cert_dir or os.environ.get(CERT_DIR_ENV):
            return True
        return any(os.path.isdir(os.path.join(base, netloc)) for base in SYSTEM_CERT_DIRS)

    def url(self, host: str, path: str) -> str:
        """An absolute URL on `host` for the API `path`."""
        return f"{self.scheme_for(host)}://{host}{path}"

    def _current(self, url: str) -> str:
        """`url` with the scheme its host is reached with now (a URL made before a switch, or a
        Location the registry wrote with the other scheme)."""
        if not self._schemes:
            return url
        scheme, sep, rest = url.partition("://")
        netloc = rest.split("/", 1)[0].split("?", 1)[0]
        wanted = self._schemes.get(netloc)
        return f"{wanted}://{rest}" if sep and wanted and wanted != scheme.lower() else url

    def _switch(self, netloc: str, scheme: str) -> None:
        with self._lock:
            self._schemes[netloc] = scheme

    # -- connections ---------------------------------------------------

    def _context(self, host: str) -> ssl.SSLContext:
        with self._lock:
            context = self._contexts.get(host)
            if context is None:
                from .tls import tls_context

                context = self._contexts[host] = tls_context(cert_dirs(host, self.options.cert_dir),
                                                             self.verifies(host))
            return context

    def _connect(self, scheme: str, netloc: str) -> Connection:
        tls = self._context(netloc) if scheme == "https" else None
        host, port = split_host(netloc, 443 if tls is not None else 80)
        return Connection(host, port, self.options.timeout, tls, proxy_for(scheme, netloc))

    def _checkout(self, key: tuple[str, str]) -> tuple[Connection, bool]:
        with self._lock:
            idle = self._idle.get(key)
            conn = idle.pop() if idle else None
        reused = conn is not None
        conn = conn or self._connect(*key)
        with self._lock:
            self._busy.add(conn)
        return conn, reused

    def _checkin(self, key: tuple[str, str], conn: Connection, reusable: bool) -> None:
        with self._lock:
            self._busy.discard(conn)
            if reusable:
                self._idle.setdefault(key, []).append(conn)
                return
        conn.close()

    def abort(self) -> None:
        """Cut every connection in use, so threads blocked reading from them fail at once; from
        now on a failed request is not tried again."""
        with self._lock:
            self._aborted = True
            busy = list(self._busy)
        for conn in busy:
            if conn.sock is not None:
                try:
                    conn.sock.shutdown(SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        """Close every idle connection, and those of requests sent ahead and never read."""
        with self._lock:
            idle, self._idle = self._idle, {}
            unread = [conn for _, conn, _ in self._ahead.values()]
            self._ahead = {}
            self._busy.difference_update(unread)
        for conn in [c for conns in idle.values() for c in conns] + unread:
            conn.close()

    # -- requests --------------------------------------------------------

    def request(self, method: str, url: str, headers: dict[str, str] | None = None, body: Body = None,
                *, retry: bool = True) -> Response:
        """Send a request, retrying retryable failures when `retry` and the body can be replayed.

        Returns the last response whatever its status (the caller judges it); raises
        HttpError when the connection keeps failing.
        """
        start = body.tell() if body is not None and not isinstance(body, bytes) and body.seekable() else None
        replayable = body is None or isinstance(body, bytes) or start is not None
        attempts = 1 + (self.options.retries if retry and replayable else 0)
        switched = False
        attempt = 0
        while attempt < attempts:
            if (attempt or switched) and start is not None:
                body.seek(start)  # type: ignore[union-attr]
            url = self._current(url)
            last = attempt == attempts - 1
            try:
                response = self._send(method, url, headers or {}, body)
            except OSError as err:  # (a TLS verification error is a ValueError too)
                if not switched and replayable and self._plain_server(url, err):
                    switched = True
                    continue  # a registry that does not speak TLS, where plain HTTP is allowed
                if last or _is_tls_error(err) or _unknown_host(err) or self._aborted:  # neither heals by waiting
                    raise HttpError(f"{method} {redact(url)}: {describe_error(err)}") from None
                self.pause(attempt, None, f"{method} {redact(url)}: {describe_error(err)}")
                attempt += 1
                continue
            except ValueError as err:  # a URL or header no request can carry: asking again does not help
                raise HttpError(f"{method} {redact(url)}: {err}") from None
            if response.status == 400 and url.startswith("http:") and self._tls_server(response):
                if switched or self.options.insecure or not replayable:
                    raise HttpError(f"{method} {redact(url)}: the registry speaks TLS, not plain HTTP"
                                    f"{': drop --insecure' if self.options.insecure else ''} "
                                    "(--tls-verify=false skips the certificate check)", 400)
                self._switch(urls.split(url)[1], "https")
                switched = True
                continue
            if response.status in RETRY_STATUSES and not last and not self._aborted:
                retry_after = parse_retry_after(response.header("Retry-After"))
                response.drain()
                if retry_after is not None and retry_after > MAX_RETRY_AFTER:
                    return response
                self.pause(attempt, retry_after, f"{method} {redact(url)}: HTTP {response.status}")
                attempt += 1
                continue
            return response
        raise AssertionError("unreachable")

    def _plain_server(self, url: str, err: OSError) -> bool:
        """True when a TLS handshake met a plain HTTP server on a host where plain HTTP is
        allowed (TLS without verification): the host is then reached with plain HTTP."""
        ssl = sys.modules.get("ssl")
        if ssl is None or not isinstance(err, ssl.SSLError) or err.reason != "WRONG_VERSION_NUMBER":
            return False
        scheme, netloc, _ = urls.split(url)
        if scheme != "https" or self.verifies(netloc):
            return False
        self._switch(netloc, "http")
        return True

    @staticmethod
    def _tls_server(response: Response) -> bool:
        """True for the answer a TLS server gives a plain HTTP request: Go's, a bare `HTTP/1.0
        400` without a single header (`Client sent an HTTP request to an HTTPS server.`, no body
        to a HEAD); nginx's `The plain HTTP request was sent to HTTPS port`. So: a 400 without
        headers, or one that is no registry's JSON error and names HTTPS (its body is read)."""
        if not len(response.headers):
            response.close()
            return True
        if "json" in (response.header("Content-Type") or ""):
            return False
        try:
            text = response.read_all(4096, "answer")
        except (OSError, IntegrityError):
            response.close()
            return False
        return b"HTTPS" in text.upper()

    def send_ahead(self, method: str, url: str, headers: dict[str, str] | None = None) -> None:
        """Send a request without a body now and read its answer later: the next `request`
        with the same method, URL and headers takes it (the caller does local work while the
        registry answers). A failure to send is forgotten: that `request` then sends anew; a
        failure to answer counts as that request's first attempt."""
        if method not in ("GET", "HEAD"):
            raise ValueError("only GET and HEAD requests are sent ahead")
        try:
            scheme, netloc, target = urls.split(url)
        except ValueError:
            return  # the request itself then says what is wrong
        key = (scheme, netloc)
        sent = _with_defaults(method, headers or {}, None)
        with self._lock:
            pending = self._ahead.get((method, url))
        if pending is not None and pending[0] == sent:
            return  # on its way already
        conn, reused = self._checkout(key)
        try:
            conn.request(method, target, sent)
        except (OSError, ValueError):
            self._checkin(key, conn, False)
            return
        with self._lock:
            replaced = self._ahead.pop((method, url), None)
            self._ahead[(method, url)] = (sent, conn, reused)
        if replaced is not None:
            self._checkin(key, replaced[1], False)

    def _answer_ahead(self, method: str, url: str, headers: dict[str, str], key: tuple[str, str]
                      ) -> tuple[wire.Response, Connection] | None:
        """The answer to a request sent ahead with these headers, and its connection, if any
        (None: send the request now). A failure is raised as `_send`'s would be, unless the
        connection was kept alive and the server closed it: then the request is sent anew."""
        with self._lock:
            ahead = self._ahead.pop((method, url), None)
        if ahead is None:
            return None
        sent, conn, reused = ahead
        if sent != headers:  # asked differently by now (authorization learnt meanwhile)
            self._checkin(key, conn, False)
            return None
        try:
            return conn.getresponse(), conn
        except OSError as err:
            self._checkin(key, conn, False)
            if not (reused and isinstance(err, STALE_CONNECTION_ERRORS)):
                raise
            log.debug("%s %s: kept-alive connection failed (%s), trying a new one", method, redact(url), err)
            return None

    def _send(self, method: str, url: str, headers: dict[str, str], body: Body) -> Response:
        scheme, netloc, target = urls.split(url)
        key = (scheme, netloc)
        headers = _with_defaults(method, headers, body)
        answered = self._answer_ahead(method, url, headers, key) if body is None and self._ahead else None
        while answered is None:
            conn, reused = self._checkout(key)
            try:
                conn.request(method, target, headers, body)
                answered = conn.getresponse(), conn
            except (OSError, ValueError) as err:
                self._checkin(key, conn, False)
                if reused and isinstance(err, STALE_CONNECTION_ERRORS) and (body is None or isinstance(body, bytes)):
                    log.debug("%s %s: kept-alive connection failed (%s), trying a new one", method, redact(url), err)
                    continue  # the server closed an idle keep-alive connection: try a fresh one
                raise
        raw, used = answered
        response = Response(raw, url, lambda reusable: self._checkin(key, used, reusable))
        if method == "HEAD":
            response.read()  # no body: the connection goes back to the pool
        return response

    def pause(self, attempt: int, retry_after: float | None, reason: str) -> None:
        """Sleep before the next attempt: Retry-After when given, else exponential backoff with jitter."""
        if retry_after is not None:
            delay = retry_after
        else:
            delay = backoff_delay(attempt, self.options.backoff, self.options.max_backoff)
        log.warning("%s; retrying in %.1fs", reason, delay)
        time.sleep(delay)


def cert_dirs(host: str, cert_dir: str | None = None) -> list[str]:
    """The certificate directories for `host`: `cert_dir` (else $OCIKIT_CERT_DIR) alone when given,
    else /etc/containers/certs.d/HOST and /etc/docker/certs.d/HOST that exist (oci.registry.tls
    loads them); NotFound for a given directory that is missing."""
    explicit = cert_dir or os.environ.get(CERT_DIR_ENV)
    if explicit:
        if not os.path.isdir(explicit):
            raise NotFound(f"{explicit}: no such certificate directory")
        return [explicit]
    return [folder for folder in (os.path.join(base, host) for base in SYSTEM_CERT_DIRS) if os.path.isdir(folder)]


def _with_defaults(method: str, headers: dict[str, str], body: Body) -> dict[str, str]:
    """The headers every request carries, with `headers` on top."""
    sent = {"User-Agent": "ocikit", **headers}
    if body is None and method in ("PUT", "POST", "PATCH"):
        sent.setdefault("Content-Length", "0")
    return sent


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff: `base * 2**attempt`, capped, with up to 25% random jitter."""
    import random

    delay = min(cap, base * (2 ** attempt))
    return delay * (1 + random.random() * 0.25)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta seconds or an HTTP date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    import email.utils

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def describe_error(err: BaseException) -> str:
    """A short human description of a connection-level failure."""
    if isinstance(err, TimeoutError):
        return "timed out"
    ssl = sys.modules.get("ssl")  # no TLS error without ssl imported
    if ssl is not None and isinstance(err, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted ({err.verify_message}); see --cert-dir, or --tls-verify=false"
    if ssl is not None and isinstance(err, ssl.SSLError):
        hint = " (a plain HTTP registry? see --insecure)" if err.reason == "WRONG_VERSION_NUMBER" else ""
        return f"TLS error: {err.reason or err}{hint}"
    if isinstance(err, ConnectionRefusedError):
        return "connection refused"
    if _unknown_host(err):
        return f"host name lookup failed ({(getattr(err, 'strerror', None) or str(err)).lower()})"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror.lower()
    return str(err) or type(err).__name__


def _unknown_host(err: BaseException) -> bool:
    """A host name the resolver does not know (asking again gives the same answer; a resolver
    that could not answer now, EAI_AGAIN, is worth another try)."""
    import _socket

    return isinstance(err, _socket.gaierror) and err.errno != _socket.EAI_AGAIN


def _is_tls_error(err: BaseException) -> bool:
    ssl = sys.modules.get("ssl")
    return ssl is not None and isinstance(err, ssl.SSLError)


def redact(url: str) -> str:
    """A URL without its query string (upload locations carry secrets on some registries)."""
    return url.split("?", 1)[0]
