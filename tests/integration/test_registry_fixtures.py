"""Smoke tests of the registry fixtures: each setup serves, authenticates and counts requests."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
import time
import urllib.error
import urllib.request

import pytest

from . import images
from .conftest import TOKEN_POLICY
from .faultproxy import Fault


def _get(url: str, headers: dict[str, str] | None = None, ca_file: str | None = None,
         method: str = "GET") -> tuple[int, dict, bytes]:
    context = ssl.create_default_context(cafile=ca_file) if ca_file else None
    req = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10, context=context) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_plain_registry_takes_a_skopeo_push(registry, repo, small_image):
    mark = registry.mark()
    ref = images.push_layout(small_image.path, small_image.tag, registry, repo)
    assert images.skopeo_manifest_digest(ref, registry) == str(small_image.descriptor.digest)
    seen = registry.requests_since(mark)
    assert any(r.method == "PUT" and r.path == f"/v2/{repo}/manifests/v1" for r in seen)
    assert sum(1 for r in seen if r.method == "PUT" and "/blobs/uploads/" in r.path) == 3  # 2 layers + config


def test_tls_registry_demands_basic_auth(tls_registry):
    status, headers, _ = _get(f"{tls_registry.url}/v2/", ca_file=tls_registry.ca_file)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Basic ")
    status, _, _ = _get(f"{tls_registry.url}/v2/", _basic(tls_registry.username, tls_registry.password),
                        tls_registry.ca_file)
    assert status == 200
    assert _get(f"{tls_registry.url}/v2/", _basic(tls_registry.username, "wrong"), tls_registry.ca_file)[0] == 401
    with pytest.raises(urllib.error.URLError):  # the CA is not in the system store
        urllib.request.urlopen(f"{tls_registry.url}/v2/", timeout=5)


def test_tls_registry_with_skopeo_and_auth_json(tls_registry, repo, small_image, tmp_path):
    ref = images.push_layout(small_image.path, small_image.tag, tls_registry, repo)
    auth = images.write_auth_json(str(tmp_path / "auth.json"), tls_registry)
    out = images.skopeo("inspect", "--raw", f"--authfile={auth}", f"--cert-dir={tls_registry.cert_dir}",
                        f"docker://{ref}").stdout
    assert json.loads(out)["config"]["digest"]


def test_token_registry_issues_scoped_tokens(new_registry, repo, small_image):
    # A private token registry, as in test_push.py::test_token_auth (see the note there).
    token_registry = new_registry(token={**TOKEN_POLICY, "deny": set(TOKEN_POLICY["deny"])})
    issuer = token_registry.token_issuer
    status, headers, _ = _get(f"{token_registry.url}/v2/")
    challenge = headers["WWW-Authenticate"]
    assert status == 401 and challenge.startswith("Bearer ") and issuer.realm in challenge
    images.push_layout(small_image.path, small_image.tag, token_registry, repo)
    grant = issuer.grants[-1]
    assert grant.user == "alice"
    assert any(a["name"] == repo and "push" in a["actions"] for a in grant.access)

    # anonymous: pull only, so the token lets us read but a push scope is cut down
    anon = json.loads(_get(f"{issuer.realm}?service={issuer.service}&scope=repository:{repo}:pull,push")[2])
    assert issuer.grants[-1].access == [{"type": "repository", "name": repo, "actions": ["pull"]}]
    status, _, _ = _get(f"{token_registry.url}/v2/{repo}/manifests/v1",
                        {"Authorization": f"Bearer {anon['token']}",
                         "Accept": "application/vnd.oci.image.manifest.v1+json"})
    assert status == 200
    status, _, _ = _get(f"{token_registry.url}/v2/{repo}/blobs/uploads/", {"Authorization": f"Bearer {anon['token']}"},
                        method="POST")
    assert status == 401

    # a user denied a repository gets no actions; wrong passwords are refused
    _get(f"{issuer.realm}?service={issuer.service}&scope=repository:private/secret:pull", _basic("bob", "bob-pw"))
    assert issuer.grants[-1].access[0]["actions"] == []
    assert _get(f"{issuer.realm}?service={issuer.service}", _basic("bob", "nope"))[0] == 401


def test_new_registry_is_private_and_empty(new_registry):
    reg = new_registry()
    status, _, body = _get(f"{reg.url}/v2/_catalog")
    assert status == 200 and json.loads(body)["repositories"] == []


def test_fault_proxy_passes_through_and_counts(registry, fault_proxy, repo, small_image):
    images.push_layout(small_image.path, small_image.tag, registry, repo)
    status, _, body = _get(f"http://{fault_proxy.host}/v2/{repo}/tags/list")
    assert status == 200 and json.loads(body)["tags"] == ["v1"]
    assert fault_proxy.count("GET", "/tags/list") == 1


def test_fault_proxy_injects_status_and_retry_after(registry, fault_proxy):
    fault_proxy.add(Fault("GET", r"^/v2/$", status=429, headers={"Retry-After": "2"}, times=1))
    status, headers, _ = _get(f"http://{fault_proxy.host}/v2/")
    assert status == 429 and headers["Retry-After"] == "2"
    assert _get(f"http://{fault_proxy.host}/v2/")[0] == 200
    fault_proxy.add(Fault(None, r"^/v2/$", status=500, times=2))
    assert [_get(f"http://{fault_proxy.host}/v2/")[0] for _ in range(3)] == [500, 500, 200]
    assert fault_proxy.count(None, r"^/v2/$") == 5


def test_fault_proxy_resets_corrupts_and_stalls_blobs(registry, fault_proxy, repo, small_image):
    images.push_layout(small_image.path, small_image.tag, registry, repo)
    layer = json.loads(open(small_image.path + "/blobs/sha256/" + small_image.descriptor.digest.hex, "rb").read())
    digest = layer["layers"][1]["digest"]
    url = f"http://{fault_proxy.host}/v2/{repo}/blobs/{digest}"
    good = _get(url)[2]
    assert len(good) == layer["layers"][1]["size"]

    fault_proxy.add(Fault("GET", f"/blobs/{digest}", action="reset", after=1000))
    with pytest.raises((http.client.IncompleteRead, ConnectionError)):
        urllib.request.urlopen(url, timeout=5).read()

    fault_proxy.add(Fault("GET", f"/blobs/{digest}", action="corrupt", after=10))
    bad = _get(url)[2]
    assert len(bad) == len(good) and bad != good and bad[11:] == good[11:]

    fault_proxy.add(Fault("GET", f"/blobs/{digest}", action="stall", after=100, seconds=3))
    start = time.monotonic()
    with pytest.raises((TimeoutError, socket.timeout, http.client.IncompleteRead)):
        urllib.request.urlopen(url, timeout=0.5).read()
    assert time.monotonic() - start < 2.5
    assert fault_proxy.count("GET", f"/blobs/{digest}") == 4


def _patch(host: str, location: str, body: bytes, start: int) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection(host, timeout=10)
    headers = {"Content-Type": "application/octet-stream", "Content-Range": f"{start}-{start + len(body) - 1}"}
    conn.request("PATCH", location.split(host, 1)[1], body=body, headers=headers)
    resp = conn.getresponse()
    resp.read()
    return resp


def test_fault_proxy_cuts_an_upload_midway(registry, fault_proxy, repo):
    status, headers, _ = _get(f"http://{fault_proxy.host}/v2/{repo}/blobs/uploads/", method="POST")
    assert status == 202
    location = headers["Location"]
    assert location.startswith(f"http://{fault_proxy.host}/")
    first = _patch(fault_proxy.host, location, b"a" * 1000, 0)
    assert first.status == 202
    location = first.headers["Location"]

    # cut before any byte of the body: the registry keeps the upload, and its range says where to resume
    fault_proxy.add(Fault("PATCH", "/blobs/uploads/", action="reset_request", after=0))
    with pytest.raises(ConnectionError):
        _patch(fault_proxy.host, location, b"b" * 1_000_000, 1000)
    time.sleep(0.1)
    status, headers, _ = _get(location)
    assert status == 204 and headers["Range"] == "0-999"

    # cut midway: distribution 2.8 stored part of the body, so it refuses (and cancels) the upload
    fault_proxy.add(Fault("PATCH", "/blobs/uploads/", action="reset_request", after=300_000))
    with pytest.raises(ConnectionError):
        _patch(fault_proxy.host, location, b"b" * 1_000_000, 1000)
    time.sleep(0.1)
    assert _get(location)[0] == 404
    assert fault_proxy.count("PATCH", "/blobs/uploads/") == 3
