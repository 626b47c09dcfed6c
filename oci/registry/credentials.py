"""Registry credentials from the files Docker and the containers tools write.

Looked up in this order, the first file that knows the registry wins:

1. `$REGISTRY_AUTH_FILE`, else `${XDG_RUNTIME_DIR}/containers/auth.json`, else
   `/run/containers/UID/auth.json` (where podman and `ocikit login` write without XDG_RUNTIME_DIR);
2. `${XDG_CONFIG_HOME:-~/.config}/containers/auth.json`;
3. `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.

In each file: `credHelpers[host]` (run `docker-credential-NAME get`), then an `auths`
entry (`auth` = base64 `user:password`, or `username`/`password`, or `identitytoken`;
containers files may key entries by `host/namespace` too, the longest match wins), then
`credsStore`. A helper that fails is reported as a warning and treated as "no
credentials", so access falls back to anonymous.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections import namedtuple

from oci import log
from oci.reference import DOCKER_HUB

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
HELPER_TIMEOUT = 30.0
MAX_FILE = 1 << 20


class Credentials(namedtuple("Credentials", ["username", "password", "identity_token"], defaults=("", "", ""))):
    """A user name and password, or an identity (refresh) token for bearer auth."""

    __slots__ = ()
    username: str
    password: str
    identity_token: str

    def __repr__(self) -> str:  # never show secrets in tracebacks
        return f"Credentials(username={self.username!r})"


def config_files() -> list[str]:
    """The credential files to consult, in order of precedence."""
    env = os.environ
    home = os.path.expanduser("~")
    files = []
    if env.get("REGISTRY_AUTH_FILE"):
        files.append(env["REGISTRY_AUTH_FILE"])
    elif env.get("XDG_RUNTIME_DIR"):
        files.append(os.path.join(env["XDG_RUNTIME_DIR"], "containers", "auth.json"))
    else:
        files.append(f"/run/containers/{os.getuid()}/auth.json")
    files.append(os.path.join(env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config"), "containers", "auth.json"))
    files.append(os.path.join(env.get("DOCKER_CONFIG") or os.path.join(home, ".docker"), "config.json"))
    return files


def lookup(registry: str, repository: str = "") -> Credentials | None:
    """Credentials for `registry` (and `repository`, for repository-scoped entries), or None."""
    for path in config_files():
        config = _read_config(path)
        if config is None:
            continue
        found, known = _from_config(config, registry, repository, path)
        if known:
            return found
    return None


def _read_config(path: str) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE + 1)
    except FileNotFoundError:
        return None
    except OSError as err:
        log.warning("%s: cannot read credentials: %s", path, err.strerror)
        return None
    try:
        config = json.loads(data) if len(data) <= MAX_FILE else None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        log.warning("%s: ignored, not valid JSON: %s", path, err)
        return None
    if not isinstance(config, dict):
        log.warning("%s: ignored, not a JSON object", path)
        return None
    return config


def _from_config(config: dict[str, Any], registry: str, repository: str, path: str) -> tuple[Credentials | None, bool]:
    """(credentials, whether this file has an opinion about the registry)."""
    helpers = config.get("credHelpers")
    if isinstance(helpers, dict):
        for key in _keys(registry):
            if isinstance(helpers.get(key), str):
                return run_helper(helpers[key], _server_url(registry)), True
    auths = config.get("auths")
    if isinstance(auths, dict):
        entry = _auth_entry(auths, registry, repository)
        if entry is not None:
            found = _decode_entry(entry, path)
            if found is not None:
                return found, True
    store = config.get("credsStore")
    if isinstance(store, str) and store:
        return run_helper(store, _server_url(registry)), True
    return None, False


def _auth_entry(auths: dict[str, Any], registry: str, repository: str) -> dict[str, Any] | None:
    parts = repository.split("/") if repository else []
    for i in range(len(parts), 0, -1):  # repository-scoped entries, most specific first
        entry = auths.get(f"{registry}/{'/'.join(parts[:i])}")
        if isinstance(entry, dict):
            return entry
    wanted = set(_keys(registry))
    for key, entry in auths.items():
        if isinstance(entry, dict) and normalise_key(key) in wanted:
            return entry
    return None


def _decode_entry(entry: dict[str, Any], path: str) -> Credentials | None:
    if entry.get("identitytoken"):
        return Credentials(username=str(entry.get("username", "")), identity_token=str(entry["identitytoken"]))
    if entry.get("auth"):
        try:
            user, sep, password = base64.b64decode(str(entry["auth"]), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            log.warning("%s: ignored an auth entry that is not base64 user:password", path)
            return None
        if not sep:
            log.warning("%s: ignored an auth entry that is not base64 user:password", path)
            return None
        return Credentials(user, password)
    if entry.get("username"):
        return Credentials(str(entry["username"]), str(entry.get("password", "")))
    return None


def normalise_key(key: str) -> str:
    """`https://host/v1/` -> `host`, the form config files use in many spellings."""
    key = key.split("://", 1)[-1]
    return key.split("/", 1)[0]


def _keys(registry: str) -> list[str]:
    if registry == DOCKER_HUB:
        return [DOCKER_HUB_KEY, "docker.io", "index.docker.io", "registry-1.docker.io"]
    return [registry]


def _server_url(registry: str) -> str:
    return DOCKER_HUB_KEY if registry == DOCKER_HUB else registry


def run_helper(name: str, server: str) -> Credentials | None:
    """Ask `docker-credential-NAME get` for `server`; warn and return None when it fails."""
    import subprocess

    program = f"docker-credential-{name}"
    try:
        proc = subprocess.run([program, "get"], input=server.encode(), capture_output=True, timeout=HELPER_TIMEOUT)
    except FileNotFoundError:
        log.warning("credential helper %s not found; continuing without credentials", program)
        return None
    except (OSError, subprocess.TimeoutExpired) as err:
        log.warning("credential helper %s failed (%s); continuing without credentials", program, err)
        return None
    if proc.returncode != 0:
        message = (proc.stdout or proc.stderr).decode(errors="replace").strip()
        if "credentials not found" in message.lower():
            return None
        log.warning("credential helper %s exited %d: %s; continuing without credentials",
                    program, proc.returncode, message.splitlines()[0] if message else "no message")
        return None
    try:
        answer = json.loads(proc.stdout)
        username, secret = str(answer.get("Username", "")), str(answer["Secret"])
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
        log.warning("credential helper %s gave an unreadable answer; continuing without credentials", program)
        return None
    if username == "<token>":
        return Credentials(identity_token=secret)
    return Credentials(username, secret)
