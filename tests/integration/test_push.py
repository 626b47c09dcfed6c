"""oci-push against the real registry: plain, TLS with basic auth, token auth; interop with skopeo."""

from __future__ import annotations

import json
import os

import pytest

from oci.descriptor import OCI_MANIFEST, Descriptor
from oci.image import LAYOUT_ANNOTATION, Image
from oci.layout import Layout
from oci.registry.locations import SOURCE_ANNOTATION

from . import images
from .conftest import TOKEN_POLICY
from .push_support import blob_writes, environment, flags, uploads_started


def _push(oci, tmp_path, registry, *args: str, **env: str):
    return oci("push", *flags(registry), *args, env={**environment(tmp_path, registry), **env})


def _layers(layout: str, descriptor: Descriptor) -> list[str]:
    manifest = json.loads(Layout.open(layout).read_blob(descriptor))
    return [manifest["config"]["digest"]] + [layer["digest"] for layer in manifest["layers"]]


def test_push_prints_the_descriptor_and_skopeo_reads_it_back(oci, tmp_path, registry, repo, small_image):
    result = _push(oci, tmp_path, registry, f"oci:{small_image.arg}", registry.ref(repo, "v1"))
    assert result.returncode == 0, result.stderr
    [summary] = result.stderr.splitlines()  # not a terminal: one line for a CI log
    assert summary.startswith(f"oci-push: {registry.host}/{repo}@{small_image.descriptor.digest}: 3 blobs uploaded (")
    assert summary.endswith(" s") and ", 0 mounted, 0 already present, " in summary
    printed = json.loads(result.stdout)
    assert printed["digest"] == str(small_image.descriptor.digest)
    assert printed["size"] == small_image.descriptor.size and printed["mediaType"] == OCI_MANIFEST
    assert printed["annotations"][LAYOUT_ANNOTATION] == small_image.path
    assert printed["annotations"]["org.ocikit.reference"] == f"{registry.host}/{repo}@{printed['digest']}"

    ref = registry.ref(repo, "v1")
    assert images.skopeo_manifest_digest(ref, registry) == printed["digest"]
    inspected = images.skopeo_inspect(ref, registry)
    assert inspected["Digest"] == printed["digest"]
    assert inspected["Layers"] == _layers(small_image.path, small_image.descriptor)[1:]

    copy = str(tmp_path / "copy")
    images.skopeo_copy(f"docker://{ref}", f"oci:{copy}:v1", registry, None, "--preserve-digests")
    copied = Layout.open(copy).resolve("v1")
    assert copied.digest == small_image.descriptor.digest
    for digest in _layers(small_image.path, small_image.descriptor):
        assert Layout.open(copy).has_blob(digest)


def test_second_push_uploads_no_blob(oci, tmp_path, registry, repo, small_image):
    assert _push(oci, tmp_path, registry, small_image.arg, registry.ref(repo, "v1")).returncode == 0
    mark = registry.mark()
    result = _push(oci, tmp_path, registry, small_image.arg, registry.ref(repo, "v2"))
    assert result.returncode == 0, result.stderr
    seen = registry.requests_since(mark)
    assert blob_writes(seen) == []
    # the repository holds the manifest by digest, so it holds every blob: none is asked for
    assert not [r for r in seen if "/blobs/" in r.path]
    digest = small_image.descriptor.digest
    assert [(r.method, r.path) for r in seen] == [("HEAD", f"/v2/{repo}/manifests/v2"),
                                                  ("HEAD", f"/v2/{repo}/manifests/{digest}"),
                                                  ("PUT", f"/v2/{repo}/manifests/v2")]


def test_blobs_the_repository_holds_are_asked_for_and_skipped(oci, tmp_path, registry, repo, request):
    layers = [{"etc/os-release": f"ID=test {request.node.nodeid}\n".encode()}, images.random_layer(32 << 10)]
    first, second = str(tmp_path / "first"), str(tmp_path / "second")
    images.build_image(first, "v1", layers=layers)
    images.build_image(second, "v2", layers=layers + [{"extra": b"one more layer"}])  # same layers, one more
    assert _push(oci, tmp_path, registry, f"{first}:v1", registry.ref(repo, "v1")).returncode == 0
    mark = registry.mark()
    result = _push(oci, tmp_path, registry, f"{second}:v2", registry.ref(repo, "v2"))
    assert result.returncode == 0, result.stderr
    seen = registry.requests_since(mark)
    heads = sorted(r.status for r in seen if "/blobs/" in r.path and r.method == "HEAD")
    assert heads == [200, 200, 404, 404]  # the two shared layers are there; the new config and layer are not
    assert uploads_started(seen) == 2


def test_push_of_what_the_registry_serves_puts_nothing(oci, tmp_path, registry, repo, small_image):
    ref = registry.ref(repo, "same")
    assert _push(oci, tmp_path, registry, small_image.arg, ref).returncode == 0
    mark = registry.mark()
    again = _push(oci, tmp_path, registry, small_image.arg, ref)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["digest"] == str(small_image.descriptor.digest)
    seen = registry.requests_since(mark)
    assert [(r.method, r.path) for r in seen] == [("HEAD", f"/v2/{repo}/manifests/same")]  # one request


def test_several_tags_and_push_by_digest(oci, tmp_path, registry, repo, small_image):
    digest = str(small_image.descriptor.digest)
    result = _push(oci, tmp_path, registry, small_image.arg, registry.ref(repo, "1.0"), "--tag", "1", "--tag", "latest")
    assert result.returncode == 0, result.stderr
    tags = images.skopeo("list-tags", "--tls-verify=false", f"docker://{registry.host}/{repo}").stdout
    assert sorted(json.loads(tags)["Tags"]) == ["1", "1.0", "latest"]
    for tag in ("1", "1.0", "latest"):
        assert images.skopeo_manifest_digest(registry.ref(repo, tag), registry) == digest

    other = f"{repo}-bydigest"
    assert _push(oci, tmp_path, registry, small_image.arg, f"{registry.host}/{other}@{digest}").returncode == 0
    assert images.skopeo_manifest_digest(f"{registry.host}/{other}@{digest}", registry) == digest
    wrong = _push(oci, tmp_path, registry, small_image.arg, f"{registry.host}/{other}@sha256:{'0' * 64}")
    assert wrong.returncode == 4 and "not sha256:0000" in wrong.stderr


def test_push_from_a_pipe(oci, tmp_path, registry, repo, small_image):
    from oci.image import to_pipe

    document = to_pipe(Layout.open(small_image.path), small_image.descriptor)
    result = oci("push", "--insecure", "-", registry.ref(repo, "piped"), input=json.dumps(document).encode(),
                 env=environment(tmp_path))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["digest"] == str(small_image.descriptor.digest)
    assert oci("push", "--insecure", "-", registry.ref(repo, "x"), input=b'{"mediaType": 1}').returncode == 2


def test_multi_platform_index(oci, tmp_path, registry, repo):
    layout = str(tmp_path / "multi")
    index = images.build_index(layout, "multi", {
        "linux/amd64": [{"bin/app": b"amd64 binary"}, {"etc/shared": b"same in both"}],
        "linux/arm64": [{"bin/app": b"arm64 binary"}, {"etc/shared": b"same in both"}],
    })
    result = _push(oci, tmp_path, registry, f"{layout}:multi", registry.ref(repo, "multi"))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["digest"] == str(index.digest)
    served = images.skopeo_inspect(registry.ref(repo, "multi"), registry, raw=True)
    assert served["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert images.skopeo_manifest_digest(registry.ref(repo, "multi"), registry) == str(index.digest)
    for entry in served["manifests"]:  # each platform's manifest is there by digest
        assert images.skopeo_manifest_digest(registry.ref(repo, entry["digest"]), registry) == entry["digest"]
    copy = str(tmp_path / "copy")
    images.skopeo_copy(f"docker://{registry.ref(repo, 'multi')}", f"oci:{copy}:multi", registry, None,
                       "--all", "--preserve-digests")
    assert Layout.open(copy).resolve("multi").digest == index.digest


def test_chunked_upload(oci, tmp_path, registry, repo):
    layout = str(tmp_path / "big")
    desc = images.build_image(layout, "big", layers=[images.random_layer(300 << 10, repo)])
    mark = registry.mark()
    result = _push(oci, tmp_path, registry, f"{layout}:big", registry.ref(repo, "big"), "--chunk-size", "64K")
    assert result.returncode == 0, result.stderr
    seen = registry.requests_since(mark)
    patches = [r for r in seen if r.method == "PATCH"]
    assert len(patches) == 5  # ceil(300K / 64K); the config (small) goes up in one PUT
    assert uploads_started(seen) == 2
    copy = str(tmp_path / "copy")
    images.skopeo_copy(f"docker://{registry.ref(repo, 'big')}", f"oci:{copy}:big", registry, None)
    assert _layers(copy, Layout.open(copy).resolve("big")) == _layers(layout, desc)
    bad = oci("push", "--insecure", "--chunk-size", "lots", f"{layout}:big", registry.ref(repo, "x"))
    assert bad.returncode == 2 and "--chunk-size" in bad.stderr


def test_cross_repository_mount(oci, tmp_path, registry, repo, small_image):
    base = f"{repo}-base"
    assert _push(oci, tmp_path, registry, small_image.arg, registry.ref(base, "v1")).returncode == 0

    mark = registry.mark()
    result = _push(oci, tmp_path, registry, small_image.arg, registry.ref(f"{repo}-hinted", "v1"), "--from-repo", base)
    assert result.returncode == 0, result.stderr
    seen = registry.requests_since(mark)
    mounts = [r for r in seen if r.method == "POST" and "mount=" in r.query]
    assert len(mounts) == 3 and all(r.status == 201 for r in mounts)
    assert [r for r in seen if r.method in ("PATCH", "PUT") and "/blobs/" in r.path] == []

    # an image oci-fetch brought from the registry knows where it came from: it mounts without a hint,
    # from the layout's index entry and from the descriptor piped from oci-fetch alike
    fetched = str(tmp_path / "fetched")
    fetch = oci("fetch", "--insecure", registry.ref(base, "v1"), fetched, env=environment(tmp_path))
    assert fetch.returncode == 0, fetch.stderr
    assert Layout.open(fetched).resolve("v1").annotations[SOURCE_ANNOTATION].startswith(f"{registry.host}/{base}")
    for target, image, piped in ((f"{repo}-annotated", f"{fetched}:v1", None), (f"{repo}-piped", "-", fetch.stdout)):
        mark = registry.mark()
        result = oci("push", "--insecure", image, registry.ref(target, "v1"), env=environment(tmp_path),
                     input=piped.encode() if piped else None)
        assert result.returncode == 0, result.stderr
        seen = registry.requests_since(mark)
        assert sum(1 for r in seen if "mount=" in r.query and r.status == 201) == 3
        assert uploads_started(seen) == 0


@pytest.mark.parametrize("learned_from", ["push", "fetch"])
def test_a_new_repository_mounts_what_the_registry_holds_elsewhere(oci, tmp_path, registry, repo, small_image,
                                                                    learned_from):
    """The blob-location cache (oci.registry.locations) learns where blobs are from every push and
    pull: a push of another copy of the image, hinted nothing, mounts every blob."""
    base = f"{repo}-base"
    images.push_layout(small_image.path, small_image.tag, registry, base)  # skopeo: ocikit learns nothing
    env = {**environment(tmp_path), "OCIKIT_BLOB_LOCATIONS": str(tmp_path / "locations")}
    if learned_from == "push":
        learn = oci("push", "--insecure", small_image.arg, registry.ref(base, "again"), env=env)
    else:
        learn = oci("fetch", "--insecure", registry.ref(base, small_image.tag), str(tmp_path / "fetched"), env=env)
    assert learn.returncode == 0, learn.stderr
    copy = str(tmp_path / "copy")  # a layout that says nothing of where the image came from
    images.skopeo_copy(f"oci:{small_image.arg}", f"oci:{copy}:{small_image.tag}")
    mark = registry.mark()
    result = oci("push", "--insecure", f"{copy}:{small_image.tag}", registry.ref(f"{repo}-new", "v1"), env=env)
    assert result.returncode == 0, result.stderr
    seen = registry.requests_since(mark)
    mounts = [r for r in seen if "mount=" in r.query]
    assert len(mounts) == 3 and all(r.status == 201 and f"from={base.replace('/', '%2F')}" in r.query
                                    for r in mounts)
    assert uploads_started(seen) == 0
    assert images.skopeo_manifest_digest(registry.ref(f"{repo}-new", "v1"), registry) == \
        str(small_image.descriptor.digest)


def test_artifact_with_subject_is_a_referrer(oci, tmp_path, registry, repo, small_image):
    assert _push(oci, tmp_path, registry, small_image.arg, registry.ref(repo, "v1")).returncode == 0
    layout = Layout.open(small_image.path)
    sbom = images.write_manifest(layout, [{"sbom.json": b"{}"}], subject=small_image.descriptor,
                                 config_extra={}, annotations={"org.example.kind": "sbom"})
    layout.tag("sbom", sbom)
    result = _push(oci, tmp_path, registry, f"{small_image.path}:sbom", f"{registry.host}/{repo}@{sbom.digest}")
    assert result.returncode == 0, result.stderr
    subject = small_image.descriptor.digest
    referrers = images.skopeo_inspect(registry.ref(repo, f"sha256-{subject.hex}"), registry, raw=True)
    assert [m["digest"] for m in referrers["manifests"]] == [str(sbom.digest)]
    assert referrers["manifests"][0]["annotations"] == {"org.example.kind": "sbom"}
    # pushing it again does not list it twice
    assert _push(oci, tmp_path, registry, f"{small_image.path}:sbom", registry.ref(repo, "sbom")).returncode == 0
    again = images.skopeo_inspect(registry.ref(repo, f"sha256-{subject.hex}"), registry, raw=True)
    assert len(again["manifests"]) == 1


def test_tls_with_basic_auth(oci, tmp_path, tls_registry, repo, small_image):
    ref = tls_registry.ref(repo, "v1")
    result = _push(oci, tmp_path, tls_registry, small_image.arg, ref)
    assert result.returncode == 0, result.stderr
    assert images.skopeo_manifest_digest(ref, tls_registry) == str(small_image.descriptor.digest)

    untrusted = oci("push", small_image.arg, ref, env=environment(tmp_path, tls_registry))
    assert untrusted.returncode == 5 and "certificate" in untrusted.stderr
    refused = oci("push", *flags(tls_registry), small_image.arg, ref,
                  env=environment(tmp_path, tls_registry, password="wrong"))
    assert refused.returncode == 6, refused.stderr
    anonymous = oci("push", *flags(tls_registry), small_image.arg, ref, env=environment(tmp_path))
    assert anonymous.returncode == 6, anonymous.stderr


def test_token_auth(oci, tmp_path, new_registry, repo, small_image):
    # A private token registry: late in a full `make test` run, requests for tokens from the
    # session-wide one were seen answered with 404 while its token server was up and answering
    # curl (cause not found yet; the token tests of test_fetch_auth.py, which run earlier, pass).
    token_registry = new_registry(token={**TOKEN_POLICY, "deny": set(TOKEN_POLICY["deny"])})
    issuer = token_registry.token_issuer
    before = len(issuer.grants)
    ref = token_registry.ref(repo, "v1")
    result = _push(oci, tmp_path, token_registry, small_image.arg, ref)
    assert result.returncode == 0, result.stderr
    grants = issuer.grants[before:]
    assert grants and all(g.user == "alice" for g in grants)
    assert any(a == {"type": "repository", "name": repo, "actions": ["pull", "push"]} for g in grants for a in g.access)
    assert images.skopeo_manifest_digest(ref, token_registry) == str(small_image.descriptor.digest)

    anonymous = oci("push", "--insecure", small_image.arg, token_registry.ref(repo, "v2"), env=environment(tmp_path))
    assert anonymous.returncode == 6, anonymous.stderr
    bob = environment(tmp_path, token_registry, username="bob", password="bob-pw")
    denied = _push(oci, tmp_path, token_registry, small_image.arg, token_registry.ref("private/secret", "v1"), **bob)
    assert denied.returncode == 6, denied.stderr
    # a mount source bob may not read is passed over: the blobs are uploaded instead (with a
    # blob-location cache that knows nothing: it would mount them from `repo`, which bob may read)
    mark = token_registry.mark()
    (tmp_path / "no-locations").mkdir()
    hinted = _push(oci, tmp_path, token_registry, small_image.arg, token_registry.ref(f"{repo}-bob", "v1"),
                   "--from-repo", "private/secret", **bob,
                   OCIKIT_BLOB_LOCATIONS=str(tmp_path / "no-locations"))
    assert hinted.returncode == 0, hinted.stderr
    seen = token_registry.requests_since(mark)
    assert not [r for r in seen if "mount=" in r.query and r.status == 201]
    assert uploads_started(seen) == 3


def test_missing_blob_in_layout_is_reported(oci, tmp_path, registry, repo, small_image):
    assert _push(oci, tmp_path, registry, small_image.arg, registry.ref(repo, "v1")).returncode == 0
    layer = _layers(small_image.path, small_image.descriptor)[-1]
    os.unlink(os.path.join(small_image.path, "blobs", *layer.split(":")))
    # the registry has the blob: a sparse layout pushes fine
    assert _push(oci, tmp_path, registry, small_image.arg, registry.ref(repo, "v2")).returncode == 0
    other = f"{repo}-other"
    result = _push(oci, tmp_path, registry, small_image.arg, registry.ref(other, "v1"))
    assert result.returncode == 3 and layer in result.stderr and "missing from the layout" in result.stderr
    assert not [r for r in registry.requests() if r.path == f"/v2/{other}/manifests/v1" and r.method == "PUT"]


def test_damaged_layout_blob_is_refused_before_upload(oci, tmp_path, registry, repo, small_image):
    layer = _layers(small_image.path, small_image.descriptor)[-1]
    path = os.path.join(small_image.path, "blobs", *layer.split(":"))
    data = bytearray(open(path, "rb").read())
    data[100] ^= 0xFF
    with open(path, "wb") as f:
        f.write(data)
    result = _push(oci, tmp_path, registry, small_image.arg, registry.ref(repo, "v1"))
    assert result.returncode == 4 and layer in result.stderr and "damaged" in result.stderr
    assert not [r for r in registry.requests() if r.path == f"/v2/{repo}/manifests/v1" and r.method == "PUT"]


def test_bad_arguments(oci, tmp_path, registry, small_image):
    assert oci("push", small_image.arg, "Not A Ref").returncode == 2
    assert oci("push", str(tmp_path / "nowhere") + ":v1", registry.ref("x/y")).returncode == 3
    assert oci("push", f"{small_image.path}:nope", registry.ref("x/y")).returncode == 3
    assert oci("push", "--insecure", small_image.arg, registry.ref("x/y"), "--tag", "bad tag!").returncode == 2
    assert "oci-push ./images" in oci("push", "--help").stdout
    assert Layout.open(small_image.path).resolve("v1").digest == small_image.descriptor.digest


@pytest.mark.parametrize("jobs", ["1", "8"])
def test_jobs(oci, tmp_path, registry, repo, jobs):
    layout = str(tmp_path / "many")
    layers = [{f"file{i}": f"layer {i} {repo}".encode()} for i in range(6)]
    images.build_image(layout, "many", layers=layers)
    result = _push(oci, tmp_path, registry, f"{layout}:many", registry.ref(repo, "many"), "--jobs", jobs)
    assert result.returncode == 0, result.stderr
    assert len(images.skopeo_inspect(registry.ref(repo, "many"), registry)["Layers"]) == 6


def test_progress_on_a_terminal_only(oci, tmp_path, registry, repo):
    import pty
    import subprocess

    from tests.conftest import command

    layout = str(tmp_path / "prog")
    images.build_image(layout, "p", layers=[images.random_layer(200 << 10, repo)])
    master, slave = pty.openpty()
    try:
        proc = subprocess.run(command("push") + ["--insecure", "--chunk-size", "64K", f"{layout}:p",
                                                 registry.ref(repo, "p")],
                              stdout=subprocess.PIPE, stderr=slave, env={**os.environ, **environment(tmp_path)},
                              timeout=60)
        os.close(slave)
        slave = -1
        shown = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    assert proc.returncode == 0
    assert b"\r[" in shown and b"blobs" in shown and b"2 blobs uploaded" in shown
    assert json.loads(proc.stdout)["digest"]  # stdout stays JSON
    plain = _push(oci, tmp_path, registry, f"{layout}:p", registry.ref(repo, "q"))
    assert "\r" not in plain.stderr and len(plain.stderr.splitlines()) == 1  # not a terminal: a summary only
    assert "0 blobs uploaded (0.0 MB), 0 mounted, 2 already present" in plain.stderr
    assert _push(oci, tmp_path, registry, "-q", f"{layout}:p", registry.ref(repo, "q")).stderr == ""


def test_progress_counts_bytes_sent_not_blobs_finished(tmp_path, registry, repo, monkeypatch):
    """The progress display hears of every block sent, in one request or in chunks."""
    from oci.reference import Reference
    from oci.registry.client import connect
    from oci.registry.http import Options
    from oci.registry.push import push

    layout = str(tmp_path / "bytes")
    desc = images.build_image(layout, "b", layers=[images.random_layer(3 << 20, repo)])
    big = max(Image.load(Layout.open(layout), desc).layers, key=lambda d: d.size)

    class Seen:
        def __init__(self):
            self.done: list[int] = []

        def begin(self, blobs):
            pass

        def advance(self, blob, done):
            if blob.digest == big.digest:
                self.done.append(done)

    for chunk_size in (32 << 20, 1 << 20):  # in one request, and in chunks
        monkeypatch.setenv("OCIKIT_BLOB_LOCATIONS", str(tmp_path / f"locations-{chunk_size}"))  # no mounts
        seen = Seen()
        target = connect(Reference.parse(registry.ref(f"{repo}-{chunk_size}", "b")), Options(insecure=True), push=True)
        push(Layout.open(layout), desc, target, tags=["b"], chunk_size=chunk_size, progress=seen)
        assert seen.done == sorted(seen.done) and seen.done[-1] == big.size
        assert len([d for d in seen.done if 0 < d < big.size]) >= 2, seen.done


def test_docker_schema2_image_is_pushed_as_is(oci, tmp_path, registry, repo):
    layout = str(tmp_path / "docker")
    desc = images.build_image(layout, "d", layers=[{"etc/docker": b"schema 2"}], docker=True)
    result = _push(oci, tmp_path, registry, f"{layout}:d", registry.ref(repo, "d"))
    assert result.returncode == 0, result.stderr
    served = images.skopeo_inspect(registry.ref(repo, "d"), registry, raw=True)
    assert served["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert images.skopeo_manifest_digest(registry.ref(repo, "d"), registry) == str(desc.digest)
