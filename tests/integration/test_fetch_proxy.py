"""oci-fetch and oci-push through an HTTP proxy (HTTPS_PROXY, HTTP_PROXY, NO_PROXY), against the
real registry behind a forward proxy of the tests. The registry is named `registry.test`, which
only the proxy resolves (to 127.0.0.1): loopback names are never proxied, and no name ever
reaches a DNS server."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run

from . import images
from .forward_proxy import ForwardProxy

NAME = "registry.test"


@pytest.fixture
def proxied(registry):
    """A proxy that knows registry.test:PORT as the plain `registry`."""
    port = registry.host.rsplit(":", 1)[1]
    proxy = ForwardProxy({f"{NAME}:{port}": int(port)})
    yield proxy, f"{NAME}:{port}"
    proxy.close()


def env_without_proxies(**extra: str) -> dict[str, str]:
    blank = {name: "" for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy")}
    return {**blank, **extra}


def test_plain_http_through_http_proxy(proxied, registry, repo, small_image, tmp_path):
    proxy, name = proxied
    ref = images.push_layout(small_image.path, small_image.tag, registry, repo).replace(registry.host, name)
    env = env_without_proxies(HTTP_PROXY=proxy.url)
    result = run("fetch", "--insecure", ref, str(tmp_path / "out"), env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["digest"] == str(small_image.descriptor.digest)
    assert any(line.startswith(f"GET http://{name}/v2/{repo}/manifests/") for line in proxy.seen), proxy.seen
    # The pushed layout goes back through the proxy too: uploads are PUT/PATCH with absolute URLs.
    pushed = run("push", "--insecure", f"{tmp_path / 'out'}:{small_image.tag}", f"{name}/{repo}-copy:1", env=env)
    assert pushed.returncode == 0, pushed.stderr
    assert any(line.startswith(f"PUT http://{name}/v2/{repo}-copy/manifests/1") for line in proxy.seen)


def test_tls_through_a_connect_tunnel_with_proxy_credentials(new_registry, repo, small_image, tmp_path):
    registry = new_registry(tls=True, cert_hosts=("127.0.0.1", NAME))
    port = registry.host.rsplit(":", 1)[1]
    ref = images.push_layout(small_image.path, small_image.tag, registry, repo).replace(registry.host, f"{NAME}:{port}")
    proxy = ForwardProxy({f"{NAME}:{port}": int(port)}, credentials=("me", "s3cret"))
    try:
        refused = run("fetch", "--cert-dir", registry.cert_dir, ref, str(tmp_path / "refused"),
                      env=env_without_proxies(HTTPS_PROXY=proxy.url))
        assert refused.returncode == 5 and "407" in refused.stderr and len(refused.stderr.splitlines()) == 1
        assert not (tmp_path / "refused").exists() or not list((tmp_path / "refused" / "blobs").rglob("*"))
        with_credentials = proxy.url.replace("http://", "http://me:s3cret@")
        result = run("fetch", "--cert-dir", registry.cert_dir, ref, str(tmp_path / "out"),
                     env=env_without_proxies(HTTPS_PROXY=with_credentials))
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["digest"] == str(small_image.descriptor.digest)
        assert f"CONNECT {NAME}:{port}" in proxy.seen
    finally:
        proxy.close()


def test_loopback_and_no_proxy_go_direct(proxied, registry, repo, small_image, tmp_path):
    proxy, _ = proxied
    ref = images.push_layout(small_image.path, small_image.tag, registry, repo)
    result = run("fetch", "--insecure", ref, str(tmp_path / "out"), env=env_without_proxies(HTTP_PROXY=proxy.url))
    assert result.returncode == 0, result.stderr
    assert proxy.seen == []


def test_an_unusable_proxy_variable_is_named(registry, repo, small_image, tmp_path):
    ref = images.push_layout(small_image.path, small_image.tag, registry, repo).replace("127.0.0.1", NAME)
    result = run("fetch", "--insecure", ref, str(tmp_path / "out"),
                 env=env_without_proxies(HTTP_PROXY="socks5://127.0.0.1:1"))
    assert result.returncode != 0 and "HTTP_PROXY=socks5://127.0.0.1:1" in result.stderr
    assert len(result.stderr.splitlines()) == 1
