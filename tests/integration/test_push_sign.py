"""oci-push --sign: cosign-format signatures, and oci.sign.verify against the real registry."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from oci import sign
from oci.digest import Digest
from oci.errors import IntegrityError
from oci.reference import Reference
from oci.registry.client import connect
from oci.registry.http import Options

from . import images
from .push_support import environment


def _keypair(folder, name: str) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    private, public = folder / f"{name}.key", folder / f"{name}.pub"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return str(private), str(public)


@pytest.fixture
def keys(tmp_path):
    return _keypair(tmp_path, "cosign"), _keypair(tmp_path, "other")


def test_signed_push_in_cosign_format(oci, tmp_path, registry, repo, small_image, keys, monkeypatch):
    (private, public), (_, other_public) = keys
    result = oci("push", "--insecure", "--sign", private, small_image.arg, registry.ref(repo, "v1"),
                 env=environment(tmp_path))
    assert result.returncode == 0, result.stderr
    digest = small_image.descriptor.digest
    tag = f"sha256-{digest.hex}.sig"
    manifest = images.skopeo_inspect(registry.ref(repo, tag), registry, raw=True)
    [layer] = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
    signature = layer["annotations"]["dev.cosignproject.cosign/signature"]

    # the payload is the simple-signing document, and the signature is plain ECDSA-SHA256 DER
    repository = connect(Reference.parse(registry.ref(repo, "v1")), Options(insecure=True))
    response, _ = repository.open_blob(Digest.parse(layer["digest"]))
    payload = response.read_all(1 << 20)
    doc = json.loads(payload)
    assert doc["critical"] == {"identity": {"docker-reference": f"{registry.host}/{repo}"},
                               "image": {"docker-manifest-digest": str(digest)},
                               "type": "cosign container image signature"}
    public_key = serialization.load_pem_public_key(open(public, "rb").read())
    public_key.verify(base64.b64decode(signature), payload, ec.ECDSA(hashes.SHA256()))

    # verify() is what oci-fetch --verify uses
    monkeypatch.setenv("REGISTRY_AUTH_FILE", environment(tmp_path)["REGISTRY_AUTH_FILE"])
    assert sign.verify(repository, digest, public)[0]["critical"]["image"]["docker-manifest-digest"] == str(digest)
    with pytest.raises(IntegrityError, match="does not verify"):
        sign.verify(repository, digest, other_public)
    with pytest.raises(IntegrityError, match="no signature"):
        sign.verify(repository, Digest.of(b"unsigned"), public)


def test_second_signature_is_added(oci, tmp_path, registry, repo, small_image, keys):
    (first, first_public), (second, second_public) = keys
    for key in (first, second):
        result = oci("push", "--insecure", "--sign", key, small_image.arg, registry.ref(repo, "v1"),
                     env=environment(tmp_path))
        assert result.returncode == 0, result.stderr
    repository = connect(Reference.parse(registry.ref(repo, "v1")), Options(insecure=True))
    digest = small_image.descriptor.digest
    manifest = images.skopeo_inspect(registry.ref(repo, f"sha256-{digest.hex}.sig"), registry, raw=True)
    assert len(manifest["layers"]) == 2
    assert sign.verify(repository, digest, first_public) and sign.verify(repository, digest, second_public)


def test_tampered_payload_is_refused(tmp_path, registry, repo, small_image, keys):
    (private, public), _ = keys
    images.push_layout(small_image.path, small_image.tag, registry, repo)
    repository = connect(Reference.parse(registry.ref(repo, "v1")), Options(insecure=True), push=True)
    digest = small_image.descriptor.digest
    # a valid signature of a payload for another image, filed under this image's tag
    other = Digest.of(b"another image")
    payload = sign.payload(f"{registry.host}/{repo}", other)
    layer = {"mediaType": sign.PAYLOAD_TYPE, "size": len(payload), "digest": str(Digest.of(payload)),
             "annotations": {sign.SIGNATURE_ANNOTATION: sign.sign_payload(sign.load_private_key(private), payload)}}
    config, manifest = sign.signature_manifest([layer])
    for blob in (payload, config):
        repository.finish_upload(repository.start_upload(), Digest.of(blob), blob)
    repository.put_manifest(sign.signature_tag(digest), manifest, "application/vnd.oci.image.manifest.v1+json")
    with pytest.raises(IntegrityError, match=f"signs {other}"):
        sign.verify(repository, digest, public)


def test_bad_keys(oci, tmp_path, registry, repo, small_image):
    missing = oci("push", "--insecure", "--sign", str(tmp_path / "none.key"), small_image.arg, registry.ref(repo))
    assert missing.returncode == 2 and "none.key" in missing.stderr
    rsa_like = tmp_path / "bad.key"
    rsa_like.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    bad = oci("push", "--insecure", "--sign", str(rsa_like), small_image.arg, registry.ref(repo),
              env=environment(tmp_path))
    assert bad.returncode == 2 and "bad.key" in bad.stderr
