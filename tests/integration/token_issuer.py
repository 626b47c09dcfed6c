"""A small token issuer for the registry's `token` auth realm (the Docker token protocol).

`GET /token?service=S&scope=repository:NAME:pull,push&scope=...` (with HTTP basic auth, or
anonymous) answers `{"token": JWT, "access_token": JWT, "expires_in": N, "issued_at": T}`.
`POST /token` takes the OAuth2 form (`grant_type=password` with `username`/`password`, or
`grant_type=refresh_token`). The JWT is signed ES256 with a key whose self-signed
certificate travels in the `x5c` header and is the registry's `rootcertbundle`.

Scopes are honoured: each requested action is granted only if the policy allows it.
By default a known user gets every action it asks for and anonymous clients get `pull` only
(`anonymous_actions`); `deny` lists (user, repository) pairs refused outright.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from .pki import KeyPair


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Grant:
    """One issued token: who asked, for which scopes, what was granted."""

    user: str | None
    scopes: list[str]
    access: list[dict]


@dataclass
class TokenIssuer:
    """The issuer's policy and state; `serve()` starts it on 127.0.0.1 in a thread."""

    signer: KeyPair
    service: str = "ocikit-test-registry"
    issuer: str = "ocikit-test-issuer"
    users: dict[str, str] = field(default_factory=dict)
    anonymous_actions: tuple[str, ...] = ("pull",)
    deny: set[tuple[str, str]] = field(default_factory=set)
    lifetime: int = 300
    grants: list[Grant] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    port: int = 0
    _server: ThreadingHTTPServer | None = None

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    # -- policy ------------------------------------------------------------

    def allowed(self, user: str | None, resource_type: str, name: str, actions: list[str]) -> list[str]:
        """The actions of one scope this user gets."""
        if user is not None and (user, name) in self.deny:
            return []
        if user is None:
            return [a for a in actions if a in self.anonymous_actions]
        if resource_type == "registry" and name != "catalog":
            return []
        return actions

    def authenticate(self, header: str | None) -> tuple[bool, str | None]:
        """(credentials acceptable, user name or None for anonymous)."""
        if not header:
            return True, None
        kind, _, value = header.partition(" ")
        if kind.lower() != "basic":
            return False, None
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False, None
        return self.users.get(user) == password and user in self.users, user

    # -- tokens ------------------------------------------------------------

    def token(self, user: str | None, scopes: list[str]) -> dict:
        """Sign a JWT granting what the policy allows of `scopes`."""
        access = []
        for scope in scopes:
            parts = scope.split(":")
            if len(parts) < 3:
                continue
            resource_type, name, actions = parts[0], ":".join(parts[1:-1]), parts[-1].split(",")
            granted = self.allowed(user, resource_type, name, [a for a in actions if a])
            access.append({"type": resource_type, "name": name, "actions": granted})
        self.grants.append(Grant(user, scopes, access))
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": user or "", "aud": self.service, "exp": now + self.lifetime,
                  "nbf": now - 10, "iat": now, "jti": secrets.token_hex(8), "access": access}
        leaf = base64.b64encode(self.signer.cert.public_bytes(serialization.Encoding.DER)).decode()
        header = {"typ": "JWT", "alg": "ES256", "x5c": [leaf]}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}".encode()
        r, s = decode_dss_signature(self.signer.key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        jwt = f"{signing_input.decode()}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"
        return {"token": jwt, "access_token": jwt, "expires_in": self.lifetime,
                "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))}

    # -- server ------------------------------------------------------------

    def serve(self) -> TokenIssuer:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _answer(self, status: int, doc: dict) -> None:
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _issue(self, query: dict[str, list[str]], auth: str | None) -> None:
                issuer.counts[self.command] += 1
                ok, user = issuer.authenticate(auth)
                if not ok:
                    self._answer(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]})
                    return
                if query.get("service", [issuer.service])[0] != issuer.service:
                    self._answer(400, {"errors": [{"code": "DENIED", "message": "unknown service"}]})
                    return
                scopes = [s for value in query.get("scope", []) for s in value.split(" ") if s]
                self._answer(200, issuer.token(user, scopes))

            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                if url.path != "/token":
                    self._answer(404, {})
                    return
                self._issue(urllib.parse.parse_qs(url.query), self.headers.get("Authorization"))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                auth = self.headers.get("Authorization")
                if form.get("grant_type", [""])[0] == "password":
                    pair = f"{form.get('username', [''])[0]}:{form.get('password', [''])[0]}"
                    auth = "Basic " + base64.b64encode(pair.encode()).decode()
                self._issue(form, auth)

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True, name="token-issuer").start()
        return self

    def close(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
