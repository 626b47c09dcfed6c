"""The CNCF distribution registry (Debian `docker-registry`) started on 127.0.0.1 for the tests.

`start_registry(workdir, ...)` writes a config (JSON, which is YAML) with temporary storage
and a free port, starts `docker-registry serve`, waits until `/v2/` answers, and returns a
`Registry`. Three setups: plain HTTP; TLS with htpasswd basic auth; token auth (with a
`TokenIssuer`). The registry's access log (combined log format on its stdout) is kept, so
`Registry.requests()` lists what the registry saw.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from . import pki
from .token_issuer import TokenIssuer

REGISTRY_BIN = shutil.which("docker-registry") or "/usr/bin/docker-registry"
_ACCESS = re.compile(r'^\S+ \S+ \S+ \[[^\]]*\] "(?P<method>[A-Z]+) (?P<target>\S+) HTTP/[0-9.]+" (?P<status>\d{3}) ')


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Request:
    """One line of the registry's access log."""

    method: str
    path: str  # without the query string
    query: str
    status: int


@dataclass
class Registry:
    """A running registry: where it is, how to trust it and log in, and what it saw."""

    host: str  # "127.0.0.1:PORT"
    scheme: str  # "http" or "https"
    workdir: str
    storage: str
    process: subprocess.Popen
    access_log: str
    ca_file: str | None = None  # PEM of the CA that signed the server certificate (TLS only)
    cert_dir: str | None = None  # a directory holding only `ca.crt` (skopeo --cert-dir, oci --cert-dir)
    certs_d: str | None = None  # a containers-certs.d style tree: CERTS_D/HOST/ca.crt
    username: str | None = None
    password: str | None = None
    token_issuer: TokenIssuer | None = None
    extra: dict = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    @property
    def insecure(self) -> bool:
        """True for plain HTTP (commands need `--insecure`, skopeo `--tls-verify=false`)."""
        return self.scheme == "http"

    def ref(self, repository: str, tag: str = "latest") -> str:
        """`HOST/REPOSITORY:TAG` (or `@DIGEST` when `tag` is a digest)."""
        sep = "@" if tag.startswith("sha256:") else ":"
        return f"{self.host}/{repository}{sep}{tag}"

    # -- what the registry saw ---------------------------------------------

    def requests(self) -> list[Request]:
        """Every request in the access log so far, oldest first."""
        found = []
        with open(self.access_log, errors="replace") as f:
            for line in f:
                m = _ACCESS.match(line)
                if m:
                    path, _, query = m["target"].partition("?")
                    found.append(Request(m["method"], path, query, int(m["status"])))
        return found

    def mark(self) -> int:
        """A position in the access log: pass it to `requests_since` to see only newer requests."""
        time.sleep(0.05)  # the registry writes its log line after the answer
        return len(self.requests())

    def requests_since(self, mark: int) -> list[Request]:
        time.sleep(0.05)
        return self.requests()[mark:]

    # -- lifecycle ---------------------------------------------------------

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.token_issuer:
            self.token_issuer.close()

    def wipe(self) -> None:
        """Delete every repository and blob (the registry keeps running)."""
        shutil.rmtree(os.path.join(self.storage, "docker"), ignore_errors=True)


def htpasswd_line(user: str, password: str) -> str:
    """A bcrypt htpasswd entry, the only kind the registry accepts (`htpasswd -Bbn`)."""
    out = subprocess.run(["htpasswd", "-Bbn", "-C", "4", user, password], check=True, capture_output=True, text=True)
    return out.stdout.strip() + "\n"


def start_registry(workdir: str, *, tls: bool = False, basic_auth: tuple[str, str] | None = None,
                   token: TokenIssuer | dict | None = None, config: dict | None = None,
                   cert_hosts: tuple[str, ...] = ("127.0.0.1", "localhost"), port: int | None = None) -> Registry:
    """Start a registry in `workdir` (storage, config, log, certificates live there).

    `tls`: serve HTTPS with a server certificate from a fresh CA. `basic_auth`: (user, password)
    for htpasswd auth. `token`: a `TokenIssuer` (not yet serving) or keyword arguments for one;
    the registry then uses the token realm. `config`: extra top-level config sections merged in.
    `cert_hosts`: the names and addresses the TLS server certificate is valid for. `port`: this
    one (say 5000, in a network namespace of the test's own) instead of a free one.
    """
    os.makedirs(workdir, exist_ok=True)
    storage = os.path.join(workdir, "storage")
    os.makedirs(storage, exist_ok=True)
    doc: dict = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": False}, "formatter": "text"},
        "storage": {"filesystem": {"rootdirectory": storage}, "delete": {"enabled": True},
                    "maintenance": {"uploadpurging": {"enabled": False}}},
        "http": {"secret": "ocikit-test-secret", "headers": {"X-Content-Type-Options": ["nosniff"]}},
    }
    extra: dict = {}
    ca = None
    if tls:
        ca = pki.make_ca(workdir)
        server = pki.make_server_cert(workdir, ca, cert_hosts)
        doc["http"]["tls"] = {"certificate": server.cert_file, "key": server.key_file}
    username = password = None
    if basic_auth:
        username, password = basic_auth
        path = os.path.join(workdir, "htpasswd")
        with open(path, "w") as f:
            f.write(htpasswd_line(username, password))
        doc["auth"] = {"htpasswd": {"realm": "ocikit-test", "path": path}}
    issuer = None
    if token is not None:
        issuer = token if isinstance(token, TokenIssuer) else TokenIssuer(pki.make_signing_cert(workdir), **token)
        if issuer.users:
            username, password = next(iter(issuer.users.items()))
        issuer.serve()
        doc["auth"] = {"token": {"realm": issuer.realm, "service": issuer.service, "issuer": issuer.issuer,
                                 "rootcertbundle": issuer.signer.cert_file}}
    for key, value in (config or {}).items():
        doc[key] = {**doc.get(key, {}), **value} if isinstance(value, dict) else value

    last_error = ""
    for _attempt in range(1 if port else 5):  # the free port may be taken between choosing and binding
        host = f"127.0.0.1:{port or free_port()}"
        doc["http"]["addr"] = host
        config_file = os.path.join(workdir, "config.yml")
        with open(config_file, "w") as f:
            json.dump(doc, f, indent=2)
        access_log = os.path.join(workdir, "access.log")
        error_log = os.path.join(workdir, "registry.log")
        with open(access_log, "wb") as out, open(error_log, "wb") as err:
            proc = subprocess.Popen([REGISTRY_BIN, "serve", config_file], stdout=out, stderr=err,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        registry = Registry(host, "https" if tls else "http", workdir, storage, proc, access_log,
                            username=username, password=password, token_issuer=issuer, extra=extra)
        if ca:
            registry.ca_file = ca.cert_file
            registry.cert_dir = os.path.join(workdir, "cert-dir")
            registry.certs_d = os.path.join(workdir, "certs.d")
            for directory in (registry.cert_dir, os.path.join(registry.certs_d, host)):
                os.makedirs(directory, exist_ok=True)
                shutil.copy(ca.cert_file, os.path.join(directory, "ca.crt"))
        if _wait_ready(registry, ca.cert_file if ca else None):
            return registry
        registry.process.kill()
        registry.process.wait()
        with open(error_log, errors="replace") as f:
            last_error = f.read()[-2000:]
    if issuer:
        issuer.close()
    raise RuntimeError(f"docker-registry did not start: {last_error}")


def _wait_ready(registry: Registry, ca_file: str | None, timeout: float = 10.0) -> bool:
    context = ssl.create_default_context(cafile=ca_file) if ca_file else None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if registry.process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"{registry.url}/v2/", timeout=1, context=context):
                return True
        except urllib.error.HTTPError as err:
            if err.code == 401:
                return True
        except (OSError, ssl.SSLError):
            pass
        time.sleep(0.05)
    return False
