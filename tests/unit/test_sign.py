"""Unit tests of oci.sign: payloads, keys, signatures and the signature manifest (no registry)."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from oci import schema, sign
from oci.digest import Digest
from oci.errors import InvalidInput, NotFound, Unsupported

DIGEST = Digest.of(b"manifest")


def _write_key(path, key, password: bytes | None = None) -> str:
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption))
    return str(path)


def _write_public(path, key) -> str:
    path.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo))
    return str(path)


def test_payload_is_cosign_simple_signing():
    doc = json.loads(sign.payload("127.0.0.1:5000/app", DIGEST))
    assert doc == {"critical": {"identity": {"docker-reference": "127.0.0.1:5000/app"},
                                "image": {"docker-manifest-digest": str(DIGEST)},
                                "type": "cosign container image signature"}, "optional": None}
    assert sign.signature_tag(DIGEST) == f"sha256-{DIGEST.hex}.sig"


def test_sign_and_verify_round_trip(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    private = sign.load_private_key(_write_key(tmp_path / "k", key))
    public = sign.load_public_key(_write_public(tmp_path / "k.pub", key))
    data = sign.payload("r/app", DIGEST)
    signature = sign.sign_payload(private, data)
    assert sign.verify_payload(public, data, signature)
    assert not sign.verify_payload(public, data + b" ", signature)
    assert not sign.verify_payload(public, data, "not base64!")
    other = ec.generate_private_key(ec.SECP256R1())
    assert not sign.verify_payload(sign.load_public_key(_write_public(tmp_path / "o.pub", other)), data, signature)


def test_encrypted_key_reads_cosign_password(tmp_path, monkeypatch):
    key = ec.generate_private_key(ec.SECP256R1())
    path = _write_key(tmp_path / "k", key, b"s3cret")
    with pytest.raises(InvalidInput):
        sign.load_private_key(path)
    monkeypatch.setenv("COSIGN_PASSWORD", "s3cret")
    assert sign.load_private_key(path).public_key().public_numbers() == key.public_key().public_numbers()


def test_bad_keys(tmp_path):
    with pytest.raises(NotFound):
        sign.load_private_key(str(tmp_path / "missing"))
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(Unsupported):
        sign.load_private_key(_write_key(tmp_path / "rsa", rsa_key))
    p384 = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(Unsupported):
        sign.load_public_key(_write_public(tmp_path / "p384.pub", p384))
    (tmp_path / "cosign.key").write_text("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nxx\n")
    with pytest.raises(Unsupported, match="cosign's encrypted key format"):
        sign.load_private_key(str(tmp_path / "cosign.key"))


def test_signature_manifest_validates():
    data = sign.payload("r/app", DIGEST)
    layer = {"mediaType": sign.PAYLOAD_TYPE, "size": len(data), "digest": str(Digest.of(data)),
             "annotations": {sign.SIGNATURE_ANNOTATION: "c2ln"}}
    config, manifest = sign.signature_manifest([layer, layer])
    doc = schema.load(manifest, "manifest", "sig")
    assert doc["config"]["digest"] == str(Digest.of(config))
    assert schema.load(config, "config", "cfg")["rootfs"]["diff_ids"] == [layer["digest"]] * 2
