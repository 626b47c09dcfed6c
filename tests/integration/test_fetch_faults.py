"""oci-fetch through the fault-injecting proxy: resets resume with Range, 5xx and 429 are
retried, altered bytes fail the digest check, stalls time out, Ctrl-C leaves the layout valid."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from oci.image import Image
from oci.layout import Layout
from tests.conftest import command, run

from . import images
from .faultproxy import Fault
from .fetch_support import snapshot

NXDOMAIN = os.path.join(os.path.dirname(__file__), "nxdomain.py")


@pytest.fixture
def image(registry, repo, tmp_path):
    """A pushed image with one 256 KiB layer; (proxied reference maker, layer digest, manifest digest)."""
    src = str(tmp_path / "src")
    desc = images.build_image(src, "v1", layers=[{"small": b"small"}, images.random_layer(256 << 10, repo)])
    images.push_layout(src, "v1", registry, repo)
    big = max(Image.load(Layout.open(src), desc).layers, key=lambda d: d.size)
    return (lambda proxy: f"{proxy.host}/{repo}:v1"), str(big.digest), desc.digest


def fetch(*args: str):
    return run("fetch", "--insecure", *args)


def test_reset_mid_blob_resumes_with_a_range_request(registry, fault_proxy, image, tmp_path):
    ref, layer, digest = image
    fault_proxy.add(Fault("GET", f"/blobs/{layer}", action="reset", after=100_000))
    mark = registry.mark()
    result = fetch(ref(fault_proxy), str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert fault_proxy.count("GET", f"/blobs/{layer}") == 2
    statuses = [r.status for r in registry.requests_since(mark) if r.path.endswith(layer)]
    assert statuses == [200, 206], statuses  # the second request asked for the rest only
    assert Layout.open(str(tmp_path / "out")).resolve("v1").digest == digest


def test_server_errors_are_retried(fault_proxy, image, tmp_path):
    ref, layer, _digest = image
    fault_proxy.add(Fault("GET", "/manifests/", status=500))
    fault_proxy.add(Fault("GET", f"/blobs/{layer}", status=503))
    result = fetch(ref(fault_proxy), str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert fault_proxy.count("GET", "/manifests/") == 2 and fault_proxy.count("GET", f"/blobs/{layer}") == 2
    assert "HTTP 500" in result.stderr and "retrying" in result.stderr  # warnings, not data


def test_too_many_requests_honours_retry_after(fault_proxy, image, tmp_path):
    ref, _layer, _digest = image
    fault_proxy.add(Fault("GET", "/manifests/", status=429, headers={"Retry-After": "1"}))
    start = time.monotonic()
    result = fetch(ref(fault_proxy), str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - start >= 1.0
    assert "retrying in 1.0s" in result.stderr


def test_persistent_server_errors_fail_cleanly(fault_proxy, image, tmp_path):
    ref, layer, _digest = image
    fault_proxy.add(Fault("GET", f"/blobs/{layer}", status=500, times=-1))
    out = tmp_path / "out"
    images.build_image(str(out), "old", layers=[{"old": b"old"}])
    before = snapshot(str(out))
    result = run("fetch", "--insecure", "--retries", "1", ref(fault_proxy), str(out))
    assert result.returncode == 5 and "HTTP 500" in result.stderr.splitlines()[-1]
    assert snapshot(str(out)) == before  # the blobs that did arrive were rolled back


def errors(stderr: str) -> list[str]:
    """The error lines of a command's stderr (warnings about retries and the summary aside)."""
    return [line for line in stderr.splitlines() if line and ": warning: " not in line
            and " blobs fetched (" not in line]


def test_bytes_altered_once_are_downloaded_again(fault_proxy, image, tmp_path):
    ref, layer, digest = image
    fault_proxy.add(Fault("GET", f"/blobs/{layer}", action="corrupt", after=5000))
    result = fetch(ref(fault_proxy), str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert fault_proxy.count("GET", f"/blobs/{layer}") == 2
    assert "downloading it once more" in result.stderr and errors(result.stderr) == []
    assert Layout.open(str(tmp_path / "out")).resolve("v1").digest == digest
    assert not os.listdir(tmp_path / "out" / ".ocikit" / "tmp")


def test_bytes_altered_twice_fail_the_digest_check(fault_proxy, image, tmp_path):
    ref, layer, _digest = image
    fault_proxy.add(Fault("GET", f"/blobs/{layer}", action="corrupt", after=5000, times=2))
    out = tmp_path / "out"
    images.build_image(str(out), "old", layers=[{"old": b"old"}])
    before = snapshot(str(out))
    result = fetch(ref(fault_proxy), str(out))
    assert result.returncode == 4, result.stderr
    [line] = errors(result.stderr)
    assert line.startswith("oci-fetch: ") and layer in line and "downloaded twice" in line
    assert result.stdout == "" and fault_proxy.count("GET", f"/blobs/{layer}") == 2
    assert snapshot(str(out)) == before


def test_a_manifest_altered_once_is_fetched_again(fault_proxy, image, tmp_path):
    ref, _layer, digest = image
    by_digest = ref(fault_proxy).rsplit(":", 1)[0] + f"@{digest}"
    fault_proxy.add(Fault("GET", "/manifests/", action="corrupt", after=10))
    result = fetch(by_digest, str(tmp_path / "out"), "--tag", "v1")
    assert result.returncode == 0, result.stderr
    assert fault_proxy.count("GET", "/manifests/") == 2 and "fetching it once more" in result.stderr


def test_resets_after_progress_resume_beyond_the_retry_count(registry, fault_proxy, repo, tmp_path):
    """A link that drops every megabyte still delivers: only breaks without progress count."""
    src = str(tmp_path / "src")
    desc = images.build_image(src, "v1", layers=[images.random_layer(6 << 20, repo)])
    images.push_layout(src, "v1", registry, repo)
    layer = str(Image.load(Layout.open(src), desc).layers[0].digest)
    fault_proxy.add(Fault("GET", f"/blobs/{layer}", action="reset", after=1 << 20, times=-1))
    result = run("fetch", "--insecure", "--retries", "2", f"{fault_proxy.host}/{repo}:v1", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    # at least six breaks (a reset loses what the client had not read yet), more than --retries
    assert fault_proxy.count("GET", f"/blobs/{layer}") >= 7
    assert Layout.open(str(tmp_path / "out")).resolve("v1").digest == desc.digest


def test_breaks_without_progress_use_up_the_retries(fault_proxy, image, tmp_path):
    ref, layer, _digest = image
    fault_proxy.add(Fault("GET", f"/blobs/{layer}", action="reset", after=10, times=-1))
    out = tmp_path / "out"
    images.build_image(str(out), "old", layers=[{"old": b"old"}])
    before = snapshot(str(out))
    result = run("fetch", "--insecure", "--retries", "2", ref(fault_proxy), str(out))
    assert result.returncode == 5, result.stderr
    [line] = errors(result.stderr)
    assert layer in line and "3 attempts in a row without progress" in line
    assert fault_proxy.count("GET", f"/blobs/{layer}") == 3
    assert snapshot(str(out)) == before


def lying_manifest(fault_proxy, image_ref: str, layer: str, delta: int) -> None:
    """Serve the image's manifest by tag with the size of `layer` off by `delta`."""
    host, path = image_ref.split("/", 1)
    repo, tag = path.rsplit(":", 1)
    raw = run("fetch", "--insecure", f"{host}/{repo}:{tag}", "--tag", "x", str(fault_proxy.scratch))
    assert raw.returncode == 0, raw.stderr
    layout = Layout.open(str(fault_proxy.scratch))
    manifest = json.loads(layout.read_blob(layout.resolve("x")))
    for entry in manifest["layers"]:
        if entry["digest"] == layer:
            entry["size"] += delta
    body = json.dumps(manifest).encode()
    fault_proxy.clear()
    fault_proxy.add(Fault("GET", f"/manifests/{tag}", status=200, body=body,
                          headers={"Content-Type": manifest["mediaType"]}))


@pytest.mark.parametrize("delta", [+1000, -1000], ids=["larger", "smaller"])
def test_a_size_lie_fails_at_once(fault_proxy, image, tmp_path, delta):
    ref, layer, _digest = image
    fault_proxy.scratch = tmp_path / "scratch"
    lying_manifest(fault_proxy, ref(fault_proxy), layer, delta)
    out = tmp_path / "out"
    images.build_image(str(out), "old", layers=[{"old": b"old"}])
    before = snapshot(str(out))
    start = time.monotonic()
    result = fetch(ref(fault_proxy), str(out))
    assert result.returncode == 4, result.stderr
    [line] = errors(result.stderr)
    assert layer in line and "the descriptor says" in line and "retrying" not in result.stderr
    assert fault_proxy.count("GET", f"/blobs/{layer}") == 1 and time.monotonic() - start < 5
    assert snapshot(str(out)) == before


@pytest.mark.parametrize("status, code", [(400, 5), (403, 6), (404, 3), (410, 5)])
def test_a_refusal_fails_at_once(fault_proxy, image, tmp_path, status, code):
    ref, layer, _digest = image
    fault_proxy.add(Fault("GET", f"/blobs/{layer}", status=status, times=-1))
    out = tmp_path / "out"
    images.build_image(str(out), "old", layers=[{"old": b"old"}])
    before = snapshot(str(out))
    result = fetch(ref(fault_proxy), str(out))
    assert result.returncode == code, result.stderr
    [line] = errors(result.stderr)
    assert layer in line and result.stderr.count("\n") == 1
    assert fault_proxy.count("GET", f"/blobs/{layer}") == 1
    assert snapshot(str(out)) == before


def test_a_stalled_blob_times_out_and_resumes(fault_proxy, image, tmp_path):
    ref, layer, digest = image
    fault_proxy.add(Fault("GET", f"/blobs/{layer}", action="stall", after=50_000, seconds=5))
    start = time.monotonic()
    result = run("fetch", "--insecure", "--timeout", "0.5", ref(fault_proxy), str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert "timed out" in result.stderr and time.monotonic() - start < 4
    assert Layout.open(str(tmp_path / "out")).resolve("v1").digest == digest


def test_ctrl_c_leaves_the_layout_valid(fault_proxy, image, tmp_path):
    ref, layer, _digest = image
    fault_proxy.add(Fault("GET", f"/blobs/{layer}", action="stall", after=50_000, seconds=30))
    out = tmp_path / "out"
    images.build_image(str(out), "old", layers=[{"old": b"old"}])
    before = snapshot(str(out))
    # Ctrl-C as a terminal sends it: SIGINT in its default disposition, even when this test
    # runs in a background job (which starts with SIGINT ignored, as its children would).
    proc = subprocess.Popen(command("fetch") + ["--insecure", ref(fault_proxy), str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 20
    while fault_proxy.count("GET", "/blobs/") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)  # the small blobs are through; the big one is stalled
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 130, stderr
    assert stdout == b"" and b"interrupted" in stderr
    assert snapshot(str(out)) == before  # partial download gone, finished ones rolled back
    layout = Layout.open(str(out))
    assert Image.load(layout, layout.resolve("old"))


def test_kill_leaves_the_layout_valid(fault_proxy, image, tmp_path):
    ref, layer, _digest = image
    fault_proxy.add(Fault("GET", f"/blobs/{layer}", action="stall", after=50_000, seconds=30))
    out = tmp_path / "out"
    images.build_image(str(out), "old", layers=[{"old": b"old"}])
    before = snapshot(str(out))
    proc = subprocess.Popen(command("fetch") + ["--insecure", ref(fault_proxy), str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while fault_proxy.count("GET", "/blobs/") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.kill()
    proc.wait(10)
    layout = Layout.open(str(out))
    assert snapshot(str(out))["index.json"] == before["index.json"]
    assert not layout.has_blob(layer)  # the partial download never took a digest name
    assert layer not in {str(d) for d in layout.gc()}
    assert not os.listdir(out / ".ocikit" / "tmp")  # gc removed the stray temporary
    assert Image.load(layout, layout.resolve("old"))


def test_blobs_travel_in_parallel(fault_proxy, image, tmp_path):
    ref, _layer, _digest = image
    fault_proxy.add(Fault("GET", "/blobs/", action="delay", seconds=1.5, times=-1))  # config and both layers
    start = time.monotonic()
    result = run("fetch", "--insecure", "--jobs", "3", ref(fault_proxy), str(tmp_path / "out"))
    elapsed = time.monotonic() - start
    assert result.returncode == 0, result.stderr
    assert fault_proxy.count("GET", "/blobs/") == 3
    assert elapsed < 3.5, elapsed  # one after the other would take 4.5 s


def test_blob_redirect_to_another_host_is_followed(registry, fault_proxy, image, tmp_path):
    ref, layer, digest = image
    repo = ref(fault_proxy).split("/", 1)[1].rsplit(":", 1)[0]
    location = f"http://{registry.host}/v2/{repo}/blobs/{layer}"  # "storage" elsewhere: the registry itself
    fault_proxy.add(Fault("GET", f"/blobs/{layer}", status=307, headers={"Location": location}))
    mark = registry.mark()
    result = fetch(ref(fault_proxy), str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert fault_proxy.count("GET", f"/blobs/{layer}") == 1  # the redirected GET went straight to the target
    assert sum(1 for r in registry.requests_since(mark) if r.path.endswith(layer)) == 1
    assert Layout.open(str(tmp_path / "out")).resolve("v1").digest == digest


@pytest.mark.root
@pytest.mark.parametrize("name", ["fetch", "push"])
def test_an_unknown_registry_host_fails_at_once(small_image, tmp_path, name):
    """A mistyped registry name is no transient fault: one line, exit 5, no retries (every DNS
    name is unknown inside the namespaces `nxdomain` runs the command in)."""
    ref = "registry.example.invalid/app:1"
    args = [ref, str(tmp_path / "out")] if name == "fetch" else [small_image.arg, ref]
    before = snapshot(small_image.path)
    start = time.monotonic()
    proc = subprocess.run(["unshare", "-nm", sys.executable, NXDOMAIN, *command(name), *args],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 5, proc.stderr
    [line] = proc.stderr.splitlines()
    assert line.startswith(f"oci-{name}: {'GET' if name == 'fetch' else 'HEAD'} https://registry.example.invalid/v2/app/")
    assert line.endswith(": host name lookup failed (name or service not known)")
    assert time.monotonic() - start < 10 and not (tmp_path / "out").exists()
    assert snapshot(small_image.path) == before
