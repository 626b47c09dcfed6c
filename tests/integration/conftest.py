"""Fixtures for tests against real registries (the CNCF distribution registry, `docker-registry`).

How to use them:

* `registry` (session): plain HTTP on 127.0.0.1, no auth. `tls_registry` (session): HTTPS with
  a CA made in the test and htpasswd basic auth. `token_registry` (session): plain HTTP with
  the `token` auth realm served by `token_issuer.TokenIssuer` (users `alice`/`alice-pw` may do
  anything; `bob`/`bob-pw` is denied `private/*`... see `TOKEN_POLICY`; anonymous may pull).
  Each is a `registry_server.Registry`: `.host` ("127.0.0.1:PORT"), `.url`, `.ref(repo, tag)`,
  `.insecure` (plain HTTP), `.ca_file`, `.cert_dir` (folder with `ca.crt`), `.certs_d`
  (`certs.d/HOST/ca.crt`), `.username`/`.password`, `.token_issuer` (its `.grants` and
  `.counts`), and `.requests()` / `.mark()` + `.requests_since(mark)` from the access log.
* The registries are shared by the whole session: use `repo` (a unique repository name per
  test) so that tests never see each other's images. `new_registry(**options)` starts a
  private one (same options as `registry_server.start_registry`: tls, basic_auth, token,
  config) that stops after the test, for tests that need an empty registry.
* `fault_proxy`: a `faultproxy.FaultProxy` in front of `registry` (plain HTTP); reach the
  registry through `fault_proxy.host` and add faults with `fault_proxy.add(Fault(...))`;
  `fault_proxy.count(method, pattern)` counts requests. Faults: status (500, 429 with
  Retry-After), reset (mid-response), reset_request (mid-upload), corrupt, corrupt_request,
  stall, delay; `skip=N` spares the first N matches; `fault_proxy.keep_alive = False` makes
  every answer close its connection (clients then never resend on a reused connection).
  Note: distribution 2.8 cancels an upload whose PATCH was cut after part of its body
  arrived (its state token then disagrees with the stored size): only a cut before any
  body byte (`after=0`) or a refused request leaves an upload that can resume from `Range`.
* Images: `images.build_image(tmp_path / "layout", "v1", layers=[{path: bytes}])`,
  `images.build_index(...)`, `images.push_layout(layout, tag, registry, repo)` (skopeo),
  `images.skopeo_inspect(...)`, `images.write_auth_json(path, registry)`.
  `small_image` gives a ready layout (path, tag, descriptor) of a two-layer image.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from oci.descriptor import Descriptor

from . import images
from .faultproxy import FaultProxy
from .registry_server import Registry, start_registry

TLS_CREDENTIALS = ("ocikit", "ocikit-secret")
TOKEN_POLICY: dict[str, Any] = {
    "users": {"alice": "alice-pw", "bob": "bob-pw"},
    "deny": {("bob", "private/secret")},
    "anonymous_actions": ("pull",),
}
_counter = itertools.count()


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A plain-HTTP registry without auth, shared by the session."""
    reg = start_registry(str(tmp_path_factory.mktemp("registry-plain")))
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """An HTTPS registry (CA made in the test) with htpasswd basic auth, shared by the session."""
    reg = start_registry(str(tmp_path_factory.mktemp("registry-tls")), tls=True, basic_auth=TLS_CREDENTIALS)
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A plain-HTTP registry with token auth (`TOKEN_POLICY`), shared by the session."""
    reg = start_registry(str(tmp_path_factory.mktemp("registry-token")), token=dict(TOKEN_POLICY))
    yield reg
    reg.stop()


@pytest.fixture
def new_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Registry]]:
    """A factory of private registries (`new_registry(tls=True, ...)`), stopped after the test."""
    started: list[Registry] = []

    def make(**options: Any) -> Registry:
        reg = start_registry(str(tmp_path_factory.mktemp("registry-private")), **options)
        started.append(reg)
        return reg

    yield make
    for reg in started:
        reg.stop()


@pytest.fixture
def fault_proxy(registry: Registry) -> Iterator[FaultProxy]:
    """A fault-injecting proxy in front of the plain `registry`, fresh for each test."""
    proxy = FaultProxy(registry.host).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def repo(request: pytest.FixtureRequest) -> str:
    """A repository name no other test uses (the session registries are shared)."""
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:60] or "test"
    return f"test/{name}-{next(_counter)}"


@dataclass(frozen=True)
class SmallImage:
    """An image in a layout: `f"{path}:{tag}"` names it for the commands."""

    path: str
    tag: str
    descriptor: Descriptor

    @property
    def arg(self) -> str:
        return f"{self.path}:{self.tag}"


@pytest.fixture
def small_image(tmp_path: Path, request: pytest.FixtureRequest) -> SmallImage:
    """A two-layer image (unique content per test) in a fresh layout."""
    seed = request.node.nodeid
    path = str(tmp_path / "layout")
    desc = images.build_image(path, "v1", layers=[{"etc/os-release": f"ID=test {seed}\n".encode()},
                                                 images.random_layer(32 << 10, seed)])
    return SmallImage(path, "v1", desc)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The engine matrix (tests/integration/engine_matrix.py), when engine checks ran in this session."""
    from tests.integration import engine_matrix  # the module the engine tests import

    if engine_matrix.RESULTS:
        terminalreporter.write_sep("=", "engine matrix: checks passed with runc and with oci-run")
        terminalreporter.write_line(engine_matrix.table(details=True))
