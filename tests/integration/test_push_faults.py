"""oci-push through the fault-injecting proxy: resumed chunks, retries, timeouts, refused digests."""

from __future__ import annotations

import json
import time

import pytest

from oci.layout import Layout

from . import images
from .faultproxy import Fault
from .push_support import environment

UPLOADS = r"/blobs/uploads/"
LAYER = 300 << 10
CHUNK = "64K"  # the layer goes up in 5 chunks


@pytest.fixture
def big_image(tmp_path, repo):
    layout = str(tmp_path / "big")
    desc = images.build_image(layout, "big", layers=[images.random_layer(LAYER, repo)])
    return layout, desc


def _push(oci, tmp_path, proxy, image: str, repo: str, *args: str):
    return oci("push", "--insecure", "--chunk-size", CHUNK, *args, image, f"{proxy.host}/{repo}:v1",
               env=environment(tmp_path))


def _served(registry, repo: str) -> str:
    return images.skopeo_manifest_digest(registry.ref(repo, "v1"), registry)


def _starts(proxy) -> int:
    return sum(1 for s in proxy.seen if s.method == "POST" and s.target.split("?")[0].endswith(UPLOADS))


def test_interrupted_chunk_resumes_where_the_registry_stands(oci, tmp_path, registry, fault_proxy, repo, big_image):
    layout, desc = big_image
    # the third chunk is cut before the registry saw a byte of it
    fault_proxy.keep_alive = False
    fault_proxy.add(Fault("PATCH", UPLOADS, action="reset_request", after=0, skip=2))
    result = _push(oci, tmp_path, fault_proxy, f"{layout}:big", repo)
    assert result.returncode == 0, result.stderr
    assert _served(registry, repo) == str(desc.digest)
    assert fault_proxy.count("GET", UPLOADS) == 1  # asked the upload's range
    assert fault_proxy.count("PATCH", UPLOADS) == 6  # 5 chunks, the third sent twice
    assert _starts(fault_proxy) == 2  # config and layer: the layer's upload was not started over
    copy = str(tmp_path / "copy")
    images.skopeo_copy(f"docker://{registry.ref(repo, 'v1')}", f"oci:{copy}:v1", registry, None)
    assert Layout.open(copy).resolve("v1").digest == desc.digest


def test_first_chunk_interrupted_resumes_from_zero(oci, tmp_path, registry, fault_proxy, repo, big_image):
    layout, desc = big_image
    fault_proxy.keep_alive = False
    fault_proxy.add(Fault("PATCH", UPLOADS, action="reset_request", after=0))
    result = _push(oci, tmp_path, fault_proxy, f"{layout}:big", repo)
    assert result.returncode == 0, result.stderr
    assert _served(registry, repo) == str(desc.digest)
    assert fault_proxy.count("GET", UPLOADS) == 1 and _starts(fault_proxy) == 2
    assert fault_proxy.count("PATCH", UPLOADS) == 6


def test_chunk_cut_midway_starts_the_blob_over(oci, tmp_path, registry, fault_proxy, repo, big_image):
    # distribution drops an upload that received part of a chunk: the blob goes up again
    layout, desc = big_image
    fault_proxy.keep_alive = False
    fault_proxy.add(Fault("PATCH", UPLOADS, action="reset_request", after=30_000, skip=1,
                          seconds=0.3))
    result = _push(oci, tmp_path, fault_proxy, f"{layout}:big", repo)
    assert result.returncode == 0, result.stderr
    assert _served(registry, repo) == str(desc.digest)
    assert _starts(fault_proxy) == 3


def test_server_errors_and_429_are_retried(oci, tmp_path, registry, fault_proxy, repo, small_image):
    fault_proxy.add(Fault("HEAD", "/blobs/sha256:", status=500, times=2))
    fault_proxy.add(Fault("PUT", "/manifests/", status=429, headers={"Retry-After": "1"}))
    fault_proxy.add(Fault("PATCH", UPLOADS, status=503))
    start = time.monotonic()
    result = oci("push", "--insecure", small_image.arg, f"{fault_proxy.host}/{repo}:v1", env=environment(tmp_path))
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - start >= 1.0  # Retry-After was honoured
    assert "HTTP 429" in result.stderr and "HTTP 500" in result.stderr  # retries are reported as warnings
    assert _served(registry, repo) == str(small_image.descriptor.digest)
    assert fault_proxy.count("PUT", "/manifests/") == 2


def test_registry_that_keeps_failing_is_reported(oci, tmp_path, fault_proxy, repo, small_image):
    fault_proxy.add(Fault("PUT", "/manifests/", status=500, times=-1, body=b'{"errors":[{"code":"UNKNOWN",'
                                                                          b'"message":"disk on fire"}]}'))
    result = oci("push", "--insecure", "--retries", "1", small_image.arg, f"{fault_proxy.host}/{repo}:v1",
                 env=environment(tmp_path))
    assert result.returncode == 5
    assert "HTTP 500" in result.stderr and "disk on fire" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("chunked", [False, True])
def test_registry_rejecting_a_digest_is_reported_clearly(oci, tmp_path, registry, fault_proxy, repo, big_image,
                                                        chunked):
    layout, desc = big_image
    layer = json.loads(Layout.open(layout).read_blob(desc))["layers"][0]["digest"]
    # the bytes change on the way: the registry computes another digest and refuses the blob
    method = "PATCH" if chunked else "PUT"
    fault_proxy.add(Fault(method, UPLOADS, action="corrupt_request", after=1000, skip=1 if chunked else 0))
    args = ["--chunk-size", "64K" if chunked else "1M", "--jobs", "1"]
    result = oci("push", "--insecure", *args, f"{layout}:big", f"{fault_proxy.host}/{repo}:v1",
                 env=environment(tmp_path))
    assert result.returncode == 4, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert f"refused blob {layer}" in lines[0] and "DIGEST_INVALID" in lines[0]
    assert fault_proxy.count("PUT", "/manifests/") == 0


def test_stalled_answer_times_out_and_is_retried(oci, tmp_path, registry, fault_proxy, repo, small_image):
    fault_proxy.add(Fault("HEAD", "/blobs/sha256:", action="stall", seconds=3))
    start = time.monotonic()
    result = oci("push", "--insecure", "--timeout", "0.5", small_image.arg, f"{fault_proxy.host}/{repo}:v1",
                 env=environment(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "timed out" in result.stderr
    assert time.monotonic() - start < 2.5
    assert _served(registry, repo) == str(small_image.descriptor.digest)


def test_registry_that_never_answers(oci, tmp_path, fault_proxy, repo, small_image):
    fault_proxy.add(Fault(None, "/v2/", action="stall", seconds=3, times=-1))
    result = oci("push", "--insecure", "--timeout", "0.3", "--retries", "1", small_image.arg,
                 f"{fault_proxy.host}/{repo}:v1", env=environment(tmp_path))
    assert result.returncode == 5 and "timed out" in result.stderr


@pytest.mark.parametrize("method, status", [("PATCH", 400), ("PUT", 413)])
def test_an_upload_refused_as_asked_fails_at_once(oci, tmp_path, registry, fault_proxy, repo, big_image, method,
                                                   status):
    """A 4xx other than 408/416/429 is the registry refusing the request itself: no chunk is
    sent again and no upload started over."""
    layout, _desc = big_image
    fault_proxy.add(Fault(method, UPLOADS, status=status, times=-1,
                          body=b'{"errors":[{"code":"DENIED","message":"not this"}]}'))
    result = _push(oci, tmp_path, fault_proxy, f"{layout}:big", repo, "--jobs", "1")
    assert result.returncode == 5, result.stderr
    [line] = result.stderr.splitlines()
    assert f"HTTP {status}" in line and "not this" in line and result.stdout == ""
    # each blob (the layer, perhaps the config too) asked at most once, never started over
    assert fault_proxy.count(method, UPLOADS) <= 2 and _starts(fault_proxy) <= 2
    assert fault_proxy.count("PUT", "/manifests/") == 0
