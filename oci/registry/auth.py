"""Registry authentication: WWW-Authenticate challenges, basic auth and bearer tokens.

A registry answers 401 with a challenge. `Basic` means sending the credentials on every
request; `Bearer realm=...,service=...,scope=...` means asking the realm for a token for
the scopes we need (`repository:NAME:pull[,push]`), anonymously or with the credentials,
and sending it as `Authorization: Bearer TOKEN`. Tokens are cached per scope set; a 401
on a request that carried a token asks for a new one, once.
"""

from __future__ import annotations

import base64
import json
import re
import time
from _thread import allocate_lock
from collections import namedtuple

from oci.errors import AuthError, RegistryError

from . import urls

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

    from .credentials import Credentials
    from .http import Transport

MAX_TOKEN_RESPONSE = 1 << 20
# Regular expressions as text: `re` compiles them on first use, so a pull that needs no
# authentication never pays for them.
_TOKEN68 = r"\s*([A-Za-z0-9._~+/-]+=*)\s*(?:,|$)"
_PARAM = r'\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*(?:,|$)'
_SCHEME = r"\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)"


class Challenge(namedtuple("Challenge", ["scheme", "params"])):
    """One challenge of a WWW-Authenticate header: a scheme (lower case) and its parameters."""

    __slots__ = ()
    scheme: str
    params: dict[str, str]


def parse_challenges(header: str) -> list[Challenge]:
    """Parse a WWW-Authenticate header (RFC 7235) into its challenges."""
    scheme_re, param_re, token68_re = re.compile(_SCHEME), re.compile(_PARAM), re.compile(_TOKEN68)
    challenges: list[Challenge] = []
    pos = 0
    while pos < len(header):
        if header[pos] in ", \t":
            pos += 1
            continue
        match = scheme_re.match(header, pos)
        if not match:
            break
        scheme, pos = match[1].lower(), match.end()
        params: dict[str, str] = {}
        while pos < len(header):
            param = param_re.match(header, pos)
            if not param:
                token = token68_re.match(header, pos) if not params else None
                if token and not param_re.match(header, token.end()) and header[pos:token.end()].strip():
                    pos = token.end()
                break
            value = param[2]
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            params[param[1].lower()] = value
            pos = param.end()
        challenges.append(Challenge(scheme, params))
    return challenges


def basic_header(credentials: Credentials) -> str:
    """`Basic base64(user:password)`."""
    pair = f"{credentials.username}:{credentials.password}".encode()
    return "Basic " + base64.b64encode(pair).decode()


_Token = namedtuple("_Token", ["value", "expires"])  # a bearer token and when it expires (time.time())


class Authenticator:
    """Authorization headers for one registry, learnt from its challenges."""

    def __init__(self, transport: Transport, registry: str,
                 credentials: Callable[[], Credentials | None]) -> None:
        self._transport = transport
        self._registry = registry
        self._find_credentials = credentials
        self._credentials: Credentials | None = None
        self._looked_up = False
        self._challenge: Challenge | None = None
        self._tokens: dict[str, _Token] = {}
        self._lock = allocate_lock()

    def credentials(self) -> Credentials | None:
        with self._lock:
            if not self._looked_up:
                self._credentials = self._find_credentials()
                self._looked_up = True
            return self._credentials

    def header(self, scopes: tuple[str, ...]) -> str | None:
        """The Authorization header for a request needing `scopes`, if we know how to make one."""
        challenge = self._challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            creds = self.credentials()
            return basic_header(creds) if creds and creds.username else None
        if challenge.scheme == "bearer":
            key = " ".join(sorted(scopes))
            with self._lock:
                token = self._tokens.get(key)
            if token is None or token.expires <= time.time():
                token = self._fetch_token(challenge, scopes)
                with self._lock:
                    self._tokens[key] = token
            return f"Bearer {token.value}"
        return None

    def challenged(self, header: str | None, scopes: tuple[str, ...]) -> None:
        """Learn from a 401's challenge how to authenticate, forgetting the token that was refused."""
        challenges = [c for c in parse_challenges(header or "") if c.scheme in ("bearer", "basic")]
        if not challenges:
            raise AuthError(f"{self._registry}: authentication required, with no challenge ocikit supports "
                            f"({header or 'no WWW-Authenticate header'})")
        challenge = next((c for c in challenges if c.scheme == "bearer"), challenges[0])
        if challenge.scheme == "basic":
            creds = self.credentials()
            if not creds or not creds.username:
                raise AuthError(f"{self._registry}: authentication required and no credentials found "
                                "(see $DOCKER_CONFIG, $REGISTRY_AUTH_FILE)")
        with self._lock:
            self._challenge = challenge
            self._tokens.pop(" ".join(sorted(scopes)), None)

    def _fetch_token(self, challenge: Challenge, scopes: tuple[str, ...]) -> _Token:
        realm = challenge.params.get("realm")
        if not realm or not realm.startswith(("https://", "http://")):
            raise AuthError(f"{self._registry}: bearer challenge without a usable realm ({realm!r})")
        query = [("service", challenge.params["service"])] if "service" in challenge.params else []
        query += [("scope", s) for s in scopes]
        creds = self.credentials()
        headers: dict[str, str] = {}
        if creds and creds.identity_token:
            form = query + [("grant_type", "refresh_token"), ("refresh_token", creds.identity_token),
                            ("client_id", "ocikit")]
            body = urls.encode_query(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            response = self._transport.request("POST", realm, headers, body)
        else:
            if creds and creds.username:
                headers["Authorization"] = basic_header(creds)
            separator = "&" if "?" in realm else "?"
            url = realm + (separator + urls.encode_query(query) if query else "")
            response = self._transport.request("GET", url, headers)
        with response:
            data = response.read_all(MAX_TOKEN_RESPONSE, "token response")
        if response.status in (401, 403):
            who = f"user {creds.username!r}" if creds and creds.username else "anonymous access"
            raise AuthError(f"{self._registry}: token server refused {who} (HTTP {response.status})")
        if response.status != 200:
            raise RegistryError(f"{self._registry}: token server answered HTTP {response.status}")
        try:
            answer = json.loads(data)
            value = answer.get("token") or answer.get("access_token")
            lifetime = answer.get("expires_in", 60)
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            raise RegistryError(f"{self._registry}: token server gave an unreadable answer") from None
        if not isinstance(value, str) or not value:
            raise RegistryError(f"{self._registry}: token server gave no token")
        lifetime = lifetime if isinstance(lifetime, int | float) and lifetime > 0 else 60
        return _Token(value, time.time() + max(10.0, lifetime - 10))
