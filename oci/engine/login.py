"""`login` and `logout`: credentials checked against the registry, then kept in the auth file podman,
skopeo and buildah read and write (containers-auth.json(5)): `$REGISTRY_AUTH_FILE`, else
`$XDG_RUNTIME_DIR/containers/auth.json`, else `/run/containers/UID/auth.json`. The fetch and
push code reads that file first (oci.registry.credentials), so every ocikit command uses them.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from oci.errors import AuthError, InvalidInput, OciError, RegistryError
from oci.fsutil import write_atomic
from oci.reference import DOCKER_HUB, DOCKER_HUB_API
from oci.registry.http import Options


def auth_file() -> str:
    """Where podman and skopeo keep credentials (and so where login writes them)."""
    if os.environ.get("REGISTRY_AUTH_FILE"):
        return os.environ["REGISTRY_AUTH_FILE"]
    if os.environ.get("XDG_RUNTIME_DIR"):
        return os.path.join(os.environ["XDG_RUNTIME_DIR"], "containers", "auth.json")
    return f"/run/containers/{os.getuid()}/auth.json"


def registry_key(server: str | None) -> str:
    """The key of a registry in auth.json: `host[:port]` (docker.io for Docker Hub), no scheme or path."""
    if not server:
        return DOCKER_HUB
    text = server.split("://", 1)[-1].split("/", 1)[0]
    if text in ("index.docker.io", "registry-1.docker.io", "docker.io"):
        return DOCKER_HUB
    if not text or any(c.isspace() for c in text):
        raise InvalidInput(f"invalid registry {server!r}")
    return text


def _read(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            doc = json.loads(f.read() or b"{}")
    except FileNotFoundError:
        return {}
    except ValueError as err:
        raise InvalidInput(f"{path}: not valid JSON: {err}") from None
    if not isinstance(doc, dict):
        raise InvalidInput(f"{path}: not a JSON object")
    return doc


def _write(path: str, doc: dict[str, Any]) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, mode=0o700, exist_ok=True)
    write_atomic(path, json.dumps(doc, indent=1).encode() + b"\n", 0o600)


def options_for(key: str, registry: Options | None = None) -> Options:
    """The transport options for a registry named by its host alone: `registry` (the command's
    flags) with its registries.conf entry (insecure or not)."""
    from oci.registry.registries_conf import resolve

    try:
        return resolve(f"{key}/ocikit-login", pull=False, options=registry)[1]
    except OciError:  # a host registries.conf blocks or cannot parse: no insecure hosts
        return registry or Options()


def check(key: str, username: str, password: str, options: Options) -> None:
    """Ask the registry whether the credentials are good (GET /v2/ with them, as Docker does)."""
    from oci.registry.credentials import Credentials
    from oci.registry.session import Registry

    host = DOCKER_HUB_API if key == DOCKER_HUB else key
    registry = Registry(host, options, name=key, credentials=lambda: Credentials(username, password))
    try:
        response = registry.request("GET", registry.url("/v2/"), ())
    except AuthError as err:
        raise AuthError(f"login to {key} failed: unauthorized: incorrect username or password ({err.message})") \
            from None
    response.drain()
    if response.status in (401, 403):
        raise AuthError(f"login to {key} failed: unauthorized: incorrect username or password")
    if response.status >= 400:
        raise RegistryError(f"login to {key} failed: HTTP {response.status}")
    registry.transport.close()


def login(server: str | None, username: str, password: str, registry: Options | None = None) -> str:
    """Check and store the credentials (the registry reached with the transport options `registry`
    and its registries.conf entry); the auth file written."""
    key = registry_key(server)
    if not username or not password:
        raise InvalidInput("login needs a username and a password")
    check(key, username, password, options_for(key, registry))
    path = auth_file()
    doc = _read(path)
    doc.setdefault("auths", {})[key] = {"auth": base64.b64encode(f"{username}:{password}".encode()).decode()}
    _write(path, doc)
    return path


def logout(server: str | None) -> bool:
    """Forget the credentials of the registry; whether there were any."""
    key = registry_key(server)
    path = auth_file()
    doc = _read(path)
    auths = doc.get("auths") or {}
    if key not in auths:
        return False
    del auths[key]
    _write(path, doc)
    return True
