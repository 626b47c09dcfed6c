"""oci-fetch against the real registry (plain HTTP): pulls, platforms, interop with skopeo,
only missing blobs travel, layouts as sources, referrers, and bad input."""

from __future__ import annotations

import json
import os
import socket
import urllib.request

import pytest

from oci.image import Image, from_pipe
from oci.layout import Layout
from tests.conftest import run

from . import images
from .faultproxy import Fault
from .fetch_support import blob_files, snapshot

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def fetch(*args: str, env: dict[str, str] | None = None):
    return run("fetch", *args, env=env)


@pytest.fixture
def pushed(registry, repo, small_image):
    """The small image pushed to the plain registry by skopeo: its reference."""
    return images.push_layout(small_image.path, small_image.tag, registry, repo)


def test_fetch_prints_the_descriptor_and_stores_a_valid_image(pushed, small_image, tmp_path):
    out = tmp_path / "out"
    result = fetch("--insecure", pushed, str(out))
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["digest"] == str(small_image.descriptor.digest) and doc["mediaType"] == OCI_MANIFEST
    layout, descriptor = from_pipe(doc)
    assert layout.path == str(out) and descriptor.ref_name == "v1"
    image = Image.load(layout, layout.resolve("v1"))
    assert len(image.layers) == 2
    assert blob_files(str(out)) == blob_files(small_image.path)  # the same bytes, nothing else
    # not a terminal: no progress, one summary line for a CI log
    assert result.stderr.splitlines() == [f"oci-fetch: {out}:v1 is {small_image.descriptor.digest}: 3 blobs fetched "
                                          f"({sum(len(b) for b in blob_files(str(out)).values()) / 1e6:.1f} MB), "
                                          f"0 already present, {result.stderr.rsplit(', ', 1)[1].strip()}"]


def test_blobs_are_byte_identical_to_skopeo_copy(pushed, registry, tmp_path):
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    assert fetch("--insecure", pushed, str(ours)).returncode == 0
    images.skopeo_copy(f"docker://{pushed}", f"oci:{theirs}:v1", registry)
    assert blob_files(str(ours)) == blob_files(str(theirs))
    assert Layout.open(str(ours)).resolve("v1").digest == Layout.open(str(theirs)).resolve("v1").digest


def test_second_fetch_transfers_manifests_only(pushed, registry, repo, tmp_path):
    out = str(tmp_path / "out")
    assert fetch("--insecure", pushed, out).returncode == 0
    before = snapshot(out)
    mark = registry.mark()
    again = fetch("--insecure", pushed, out)
    assert again.returncode == 0, again.stderr
    seen = registry.requests_since(mark)
    assert seen and all("/manifests/" in r.path for r in seen), seen
    assert snapshot(out) == before


def test_by_digest_with_tag_and_pipe_to_next_command(pushed, registry, repo, small_image, tmp_path):
    digest = str(small_image.descriptor.digest)
    out = str(tmp_path / "out")
    result = fetch("--insecure", "--tag", "pinned", registry.ref(repo, digest), out)
    assert result.returncode == 0, result.stderr
    assert Layout.open(out).resolve("pinned").digest == small_image.descriptor.digest
    untagged = fetch("--insecure", registry.ref(repo, digest), out)
    assert json.loads(untagged.stdout)["annotations"]["org.opencontainers.image.ref.name"] == digest


@pytest.fixture
def multi(registry, repo, tmp_path):
    src = str(tmp_path / "src")
    images.build_index(src, "multi", {"linux/amd64": [{"arch": b"amd64"}], "linux/arm64": [{"arch": b"arm64"}]})
    return images.push_layout(src, "multi", registry, repo), Layout.open(src)


def _arch(layout_dir: str, tag: str) -> str:
    layout = Layout.open(layout_dir)
    return Image.load(layout, layout.resolve(tag)).config["architecture"]


def test_index_resolves_to_the_asked_platform(multi, tmp_path):
    ref, _src = multi
    out = str(tmp_path / "out")
    assert fetch("--insecure", "--platform", "linux/arm64", ref, out).returncode == 0
    assert Layout.open(out).resolve("multi").media_type == OCI_MANIFEST
    assert _arch(out, "multi") == "arm64"
    assert fetch("--insecure", "--platform", "linux/amd64", "--tag", "x86", ref, out).returncode == 0
    assert _arch(out, "x86") == "amd64"


def test_unknown_platform_lists_the_offer_and_writes_nothing(multi, tmp_path):
    ref, _src = multi
    out = tmp_path / "out"
    result = fetch("--insecure", "--platform", "linux/s390x", ref, str(out))
    assert result.returncode == 3
    assert "linux/amd64" in result.stderr and "linux/arm64" in result.stderr
    assert len(result.stderr.splitlines()) == 1 and result.stdout == ""
    assert not out.exists()


def test_all_platforms_copies_the_whole_index(multi, tmp_path):
    ref, src = multi
    out = str(tmp_path / "out")
    result = fetch("--insecure", "--all-platforms", ref, out)
    assert result.returncode == 0, result.stderr
    assert Layout.open(out).resolve("multi").digest == src.resolve("multi").digest
    assert blob_files(out) == blob_files(src.path)


def test_a_layout_as_source(small_image, tmp_path):
    out = str(tmp_path / "copy")
    result = fetch(f"oci:{small_image.arg}", out)
    assert result.returncode == 0, result.stderr
    assert Layout.open(out).resolve("v1").digest == small_image.descriptor.digest
    assert blob_files(out) == blob_files(small_image.path)


def test_referrers_through_the_tag_schema(registry, repo, small_image, tmp_path):
    src = Layout.open(small_image.path)
    with src.session():
        signature = images.write_manifest(src, [{"sig": b"signed"}], subject=small_image.descriptor)
        index = images._put_json(src, {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                                       "manifests": [signature.to_json()]}, "application/vnd.oci.image.index.v1+json")
        fallback_tag = f"sha256-{small_image.descriptor.digest.hex}"
        src.tag(fallback_tag, index)
    ref = images.push_layout(small_image.path, "v1", registry, repo)
    images.push_layout(small_image.path, fallback_tag, registry, repo)
    out = str(tmp_path / "out")
    result = fetch("--insecure", "--referrers", ref, out)
    assert result.returncode == 0, result.stderr
    layout = Layout.open(out)
    assert layout.resolve(fallback_tag).digest == index.digest
    assert layout.has_blob(signature.digest) and signature.digest in layout.reachable()
    plain = str(tmp_path / "plain")
    assert fetch("--insecure", ref, plain).returncode == 0
    assert not Layout.open(plain).has_blob(signature.digest)


# -- bad input: one line, a documented exit code, the layout as it was -------------


@pytest.fixture
def existing(tmp_path):
    """A layout holding another image already, and its snapshot."""
    out = str(tmp_path / "existing")
    images.build_image(out, "old", layers=[{"etc/old": b"an older image"}])
    return out, snapshot(out)


def _refused(result, code: int, *words: str) -> None:
    assert result.returncode == code, (result.returncode, result.stderr)
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if not line.startswith("oci-fetch: warning: ")]
    assert len(lines) == 1 and lines[0].startswith("oci-fetch: "), lines
    for word in words:
        assert word in lines[0]


@pytest.mark.parametrize("ref", ["UPPER/case:tag", "host:5000/a:b:c", "a@sha256:zz", ""])
def test_invalid_reference(existing, ref):
    out, before = existing
    _refused(fetch("--insecure", ref, out), 2, "invalid reference")
    assert snapshot(out) == before


def test_unknown_tag(existing, registry, pushed):
    out, before = existing
    _refused(fetch("--insecure", pushed.rsplit(":", 1)[0] + ":nope", out), 3, "not found")
    assert snapshot(out) == before


def test_unknown_repository(existing, registry):
    out, before = existing
    _refused(fetch("--insecure", registry.ref("no/such-repo", "v1"), out), 3)
    assert snapshot(out) == before


def test_missing_blob(existing, registry, repo, pushed, small_image):
    out, before = existing
    layer = Image.load(Layout.open(small_image.path), small_image.descriptor).layers[0]
    request = urllib.request.Request(f"{registry.url}/v2/{repo}/blobs/{layer.digest}", method="DELETE")
    assert urllib.request.urlopen(request).status == 202
    result = fetch("--insecure", pushed, out, "--tag", "new")
    _refused(result, 3, str(layer.digest))
    assert snapshot(out) == before  # the blobs that did arrive were rolled back


def test_manifest_failing_the_schema(existing, fault_proxy, pushed, repo):
    out, before = existing
    bad = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"digest": "nope"}}).encode()
    fault_proxy.add(Fault("GET", "/manifests/", status=200, headers={"Content-Type": OCI_MANIFEST}, body=bad))
    result = fetch("--insecure", f"{fault_proxy.host}/{repo}:v1", out, "--tag", "new")
    assert result.returncode == 2, result.stderr
    assert "/config" in result.stderr and result.stdout == ""
    assert snapshot(out) == before


def test_manifest_over_the_size_cap(existing, fault_proxy, repo):
    out, before = existing
    huge = b'{"schemaVersion":2,"layers":[' + b" " * (5 << 20) + b"]}"
    fault_proxy.add(Fault("GET", "/manifests/", status=200, headers={"Content-Type": OCI_MANIFEST}, body=huge))
    _refused(fetch("--insecure", f"{fault_proxy.host}/{repo}:v1", out, "--tag", "new"), 4, "size cap")
    assert snapshot(out) == before


def test_manifest_digest_mismatch(existing, fault_proxy, repo, pushed, small_image):
    out, before = existing
    digest = small_image.descriptor.digest
    fault_proxy.add(Fault("GET", "/manifests/", action="corrupt", after=5, times=2))  # once would be fetched again
    _refused(fetch("--insecure", f"{fault_proxy.host}/{repo}@{digest}", out, "--tag", "new"), 4, "digest")
    assert snapshot(out) == before


def test_registry_that_never_answers(existing):
    out, before = existing
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # connections complete in the backlog, nobody ever answers
        host = f"127.0.0.1:{silent.getsockname()[1]}"
        result = fetch("--insecure", "--timeout", "0.5", "--retries", "1", f"{host}/a/b:c", out)
    _refused(result, 5, "timed out")
    assert snapshot(out) == before


def test_a_loopback_registry_needs_no_flag(existing, pushed, small_image):
    """Plain HTTP is tried first on 127.0.0.0/8 and localhost, as Docker, podman and
    go-containerregistry reach them; `localhost` and `docker://` alike."""
    out, _before = existing
    for ref in (pushed, "docker://" + pushed, pushed.replace("127.0.0.1", "localhost", 1)):
        result = fetch("--retries", "0", "--timeout", "2", ref, out, "--tag", "loopback")
        assert result.returncode == 0, (ref, result.stderr)
        assert json.loads(result.stdout)["digest"] == str(small_image.descriptor.digest)
        assert len(result.stderr.splitlines()) == 1 and " blobs fetched (" in result.stderr


def test_usage_errors(tmp_path):
    assert fetch("--all-platforms", "--platform", "linux/amd64", "a/b", str(tmp_path)).returncode == 2
    assert fetch("--platform", "linux", "a/b", str(tmp_path)).returncode == 2
    assert fetch("--jobs", "0", "a/b", str(tmp_path)).returncode == 2
    assert not os.listdir(tmp_path)


def test_docker_schema2_manifest_is_kept_as_served(registry, repo, small_image, tmp_path):
    ref = registry.ref(repo, "v2s2")
    images.skopeo_copy(f"oci:{small_image.arg}", f"docker://{ref}", None, registry, "--format", "v2s2")
    served = images.skopeo_manifest_digest(ref, registry)
    out = str(tmp_path / "out")
    result = fetch("--insecure", ref, out)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert doc["digest"] == served  # the bytes the registry serves, not a conversion
    layout = Layout.open(out)
    image = Image.load(layout, layout.resolve("v2s2"))
    assert [d.digest for d in image.layers] == [
        d.digest for d in Image.load(Layout.open(small_image.path), small_image.descriptor).layers]


def test_progress_bar_only_on_a_terminal(pushed, tmp_path):
    import pty
    import subprocess

    from tests.conftest import command

    leader, follower = pty.openpty()
    try:
        proc = subprocess.run(command("fetch") + ["--insecure", pushed, str(tmp_path / "out")],
                              stdout=subprocess.PIPE, stderr=follower, timeout=60)
        os.close(follower)
        follower = -1
        shown = b""
        try:
            while chunk := os.read(leader, 4096):
                shown += chunk
        except OSError:
            pass
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["mediaType"] == OCI_MANIFEST  # stdout stays pure JSON
    assert b"blobs" in shown and b"MB" in shown and b"[#" in shown


def _keypair(folder, name: str) -> tuple[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    private, public = folder / f"{name}.key", folder / f"{name}.pub"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return str(private), str(public)


def test_verify_refuses_unsigned_or_wrongly_signed_images(registry, repo, pushed, small_image, existing, tmp_path):
    from oci import sign
    from oci.reference import Reference
    from oci.registry.client import connect
    from oci.registry.http import Options

    out, before = existing
    (private, public), (_, other) = _keypair(tmp_path, "signer"), _keypair(tmp_path, "other")
    _refused(fetch("--insecure", "--verify", public, pushed, out, "--tag", "new"), 4, "no signature")
    sign.sign(connect(Reference.parse(pushed), Options(insecure=True), push=True), small_image.descriptor.digest,
              private)
    _refused(fetch("--insecure", "--verify", other, pushed, out, "--tag", "new"), 4)
    assert snapshot(out) == before
    result = fetch("--insecure", "--verify", public, pushed, out, "--tag", "new")
    assert result.returncode == 0, result.stderr
    entry = Layout.open(out).resolve("new")
    assert entry.digest == small_image.descriptor.digest
    assert entry.annotations["org.ocikit.source"] == pushed  # oci-push mounts from where an image came


def test_referrers_through_the_api(registry, fault_proxy, repo, small_image, tmp_path):
    src = Layout.open(small_image.path)
    with src.session():
        sbom = images.write_manifest(src, [{"sbom.json": b"{}"}], subject=small_image.descriptor)
        src.tag("sbom", sbom)
    images.push_layout(small_image.path, "v1", registry, repo)
    images.push_layout(small_image.path, "sbom", registry, repo)
    index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": [sbom.to_json()]}).encode()
    # distribution 2.8 has no referrers API: the proxy answers for it, as an OCI 1.1 registry would
    fault_proxy.add(Fault("GET", f"/referrers/{small_image.descriptor.digest}", status=200,
                          headers={"Content-Type": "application/vnd.oci.image.index.v1+json"}, body=index))
    out = str(tmp_path / "out")
    result = fetch("--insecure", "--referrers", f"{fault_proxy.host}/{repo}:v1", out)
    assert result.returncode == 0, result.stderr
    layout = Layout.open(out)
    tagged = layout.resolve(f"sha256-{small_image.descriptor.digest.hex}")
    assert layout.read_blob(tagged) == index
    assert sbom.digest in layout.reachable()
    assert fault_proxy.count("GET", r"/manifests/sha256-[0-9a-f]{64}$") == 0  # no fallback needed


def test_a_failed_referrers_step_leaves_the_layout_as_it_was(registry, fault_proxy, repo, small_image, tmp_path):
    images.push_layout(small_image.path, "v1", registry, repo)
    fault_proxy.add(Fault("GET", f"/referrers/{small_image.descriptor.digest}", status=500, times=-1))
    out = tmp_path / "out"
    result = fetch("--insecure", "--retries", "0", "--referrers", f"{fault_proxy.host}/{repo}:v1", str(out))
    assert result.returncode == 5 and len(result.stderr.splitlines()) == 1, result.stderr
    layout = Layout.open(str(out))
    assert layout.descriptors() == []  # the image is not tagged without its referrers
    assert not any(path.is_file() for path in (out / "blobs").rglob("*"))


def test_referrers_bring_cosign_signatures_along(registry, repo, pushed, small_image, tmp_path):
    from oci import sign
    from oci.reference import Reference
    from oci.registry.client import connect
    from oci.registry.http import Options

    private, _public = _keypair(tmp_path, "signer")
    signed = sign.sign(connect(Reference.parse(pushed), Options(insecure=True), push=True),
                       small_image.descriptor.digest, private)
    out = str(tmp_path / "out")
    result = fetch("--insecure", "--referrers", pushed, out)
    assert result.returncode == 0, result.stderr
    layout = Layout.open(out)
    entry = layout.resolve(f"sha256-{small_image.descriptor.digest.hex}.sig")
    assert entry.digest == signed.digest
    assert all(layout.has_blob(d) for d in layout.reachable())
