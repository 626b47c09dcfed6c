"""A session with one registry host: requests sent through the transport with the Authorization
its challenges ask for (anonymous, basic, bearer token, learnt from the first 401), and the
registry's JSON error bodies as one line. Repositories (oci.registry.client) speak through it.
"""

from __future__ import annotations

from _thread import allocate_lock

from oci.errors import AuthError, OciError

from .http import Options, Response, Transport

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

    from .auth import Authenticator
    from .credentials import Credentials
    from .http import Body

MAX_ERROR_BODY = 1 << 16


class Registry:
    """One registry host: its transport and what it told us about authentication."""

    def __init__(self, host: str, options: Options | None = None, *, name: str | None = None,
                 transport: Transport | None = None,
                 credentials: Callable[[], Credentials | None] | None = None) -> None:
        self.host = host  # where the API lives (host[:port])
        self.name = name or host  # what credentials are filed under (docker.io for Docker Hub)
        self.transport = transport or Transport(options)
        self._credentials = credentials or (lambda: credentials_for(self.name))
        self._auth: Authenticator | None = None  # made on the first challenge (401)
        self._auth_lock = allocate_lock()

    @property
    def auth(self) -> Authenticator:
        """How to authenticate here, learnt from the registry's challenges."""
        with self._auth_lock:
            if self._auth is None:
                from .auth import Authenticator

                self._auth = Authenticator(self.transport, self.name, self._credentials)
            return self._auth

    def _authorization(self, scopes: tuple[str, ...]) -> str | None:
        """The Authorization header for `scopes`; None until a challenge said how to make one."""
        return self._auth.header(scopes) if self._auth is not None else None

    def url(self, path: str) -> str:
        return self.transport.url(self.host, path)

    def send_ahead(self, method: str, url: str, scopes: tuple[str, ...], headers: dict[str, str] | None = None
                   ) -> None:
        """Send a GET or HEAD now, authorized as `request` would; `request` reads the answer."""
        sent = dict(headers or {})
        authorization = self._authorization(scopes)
        if authorization:
            sent["Authorization"] = authorization
        self.transport.send_ahead(method, url, sent)

    def request(self, method: str, url: str, scopes: tuple[str, ...], headers: dict[str, str] | None = None,
                body: Body = None, *, retry: bool = True) -> Response:
        """Send a request with the authorization `scopes` need, answering challenges (401) as asked."""
        start = body.tell() if body is not None and not isinstance(body, bytes) and body.seekable() else None
        for attempt in range(3):
            sent = dict(headers or {})
            authorization = self._authorization(scopes)
            if authorization:
                sent["Authorization"] = authorization
            if attempt and start is not None:
                body.seek(start)  # type: ignore[union-attr]
            response = self.transport.request(method, url, sent, body, retry=retry)
            if response.status != 401:
                return response
            challenge = response.header("WWW-Authenticate")
            detail = error_detail(response)
            insufficient = 'error="insufficient_scope"' in (challenge or "")
            if attempt == 2 or (authorization and insufficient) or (
                    body is not None and not isinstance(body, bytes) and start is None):
                raise AuthError(f"{self.name}: access refused for {' '.join(scopes)}{detail}")
            self.auth.challenged(challenge, scopes)
        raise AssertionError("unreachable")


def credentials_for(registry: str, repository: str = "") -> Credentials | None:
    """Credentials from the files and helpers (read when a registry first asks for them)."""
    from .credentials import lookup

    return lookup(registry, repository)


def error_detail(response: Response) -> str:
    """`: CODE: message` from a registry's JSON error body, or '' (the body is consumed)."""
    try:
        data = response.read_all(MAX_ERROR_BODY, "error body")
    except (OciError, OSError):
        response.close()
        return ""
    try:
        import json

        errors = json.loads(data).get("errors") or []
        first = errors[0]
        text = ": ".join(filter(None, (str(first.get("code", "")), str(first.get("message", "")))))
    except (ValueError, AttributeError, IndexError, TypeError):
        return ""
    return f" ({text})" if text else ""
