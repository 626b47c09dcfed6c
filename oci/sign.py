"""Image signatures in cosign's format: simple-signing payloads signed with ECDSA P-256.

A signature of manifest `sha256:HEX` in repository `HOST/NAME` is an OCI manifest tagged
`sha256-HEX.sig` in the same repository. Each of its layers is a payload
(`application/vnd.dev.cosign.simplesigning.v1+json`):

    {"critical": {"identity": {"docker-reference": "HOST/NAME"},
                  "image": {"docker-manifest-digest": "sha256:HEX"},
                  "type": "cosign container image signature"},
     "optional": null}

with the base64 DER ECDSA-SHA256 signature of the payload bytes in the layer annotation
`dev.cosignproject.cosign/signature`. Keys are PEM (PKCS#8 or SEC1 private keys, encrypted
ones with the password in $COSIGN_PASSWORD; SubjectPublicKeyInfo public keys), the forms
`cosign import-key-pair` takes and `cosign verify --key` reads.

    sign(repository, digest, "cosign.key")      # push (or extend) the signature manifest
    verify(repository, digest, "cosign.pub")    # the verified payloads, or IntegrityError
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey, EllipticCurvePublicKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

from oci import schema
from oci.descriptor import OCI_CONFIG, OCI_MANIFEST, Descriptor
from oci.digest import Digest, verify_bytes
from oci.errors import IntegrityError, InvalidInput, NotFound, Unsupported
from oci.registry.client import Repository

PAYLOAD_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
SIGNATURE_TYPE = "cosign container image signature"
PASSWORD_ENV = "COSIGN_PASSWORD"
MAX_PAYLOAD = 1 << 20
MAX_SIGNATURES = 64


def signature_tag(digest: Digest) -> str:
    """The tag cosign files the signatures of `digest` under: `sha256-HEX.sig`."""
    return f"{digest.algorithm}-{digest.hex}.sig"


def payload(docker_reference: str, digest: Digest) -> bytes:
    """The simple-signing payload that says `docker_reference` has manifest `digest`."""
    doc = {"critical": {"identity": {"docker-reference": docker_reference},
                        "image": {"docker-manifest-digest": str(digest)}, "type": SIGNATURE_TYPE},
           "optional": None}
    return json.dumps(doc, separators=(",", ":")).encode()


# -- keys ------------------------------------------------------------------


def load_private_key(path: str) -> EllipticCurvePrivateKey:
    """An ECDSA P-256 private key from a PEM file (password from $COSIGN_PASSWORD if encrypted)."""
    data = _read_key(path)
    if b"SIGSTORE PRIVATE KEY" in data or b"COSIGN PRIVATE KEY" in data:
        raise Unsupported(f"{path}: cosign's encrypted key format is not supported; use a PEM key "
                          "(for example `openssl ecparam -name prime256v1 -genkey | openssl pkcs8 -topk8 -nocrypt`)")
    password = os.environ.get(PASSWORD_ENV)
    try:
        key = load_pem_private_key(data, password.encode() if password else None)
    except (ValueError, TypeError) as err:
        raise InvalidInput(f"{path}: not a usable PEM private key ({err})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise Unsupported(f"{path}: only ECDSA P-256 keys are supported")
    return key


def load_public_key(path: str) -> EllipticCurvePublicKey:
    """An ECDSA P-256 public key from a PEM file."""
    try:
        key = load_pem_public_key(_read_key(path))
    except ValueError as err:
        raise InvalidInput(f"{path}: not a PEM public key ({err})") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise Unsupported(f"{path}: only ECDSA P-256 keys are supported")
    return key


def _read_key(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(1 << 16)
    except FileNotFoundError:
        raise NotFound(f"{path}: no such key file") from None
    except OSError as err:
        raise InvalidInput(f"{path}: cannot read key: {err.strerror}") from None


def sign_payload(key: EllipticCurvePrivateKey, data: bytes) -> str:
    """The base64 DER ECDSA-SHA256 signature of `data`."""
    return base64.b64encode(key.sign(data, ec.ECDSA(hashes.SHA256()))).decode()


def verify_payload(key: EllipticCurvePublicKey, data: bytes, signature: str) -> bool:
    """True when `signature` (base64 DER) is `key`'s signature of `data`."""
    try:
        key.verify(base64.b64decode(signature, validate=True), data, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


# -- the signature manifest ------------------------------------------------


def signature_manifest(layers: list[dict[str, Any]]) -> tuple[bytes, bytes]:
    """The (config, manifest) bytes of a signature image holding `layers` (payload descriptors)."""
    config = {"architecture": "", "os": "", "created": "0001-01-01T00:00:00Z", "config": {},
              "history": [{"created": "0001-01-01T00:00:00Z"} for _ in layers],
              "rootfs": {"type": "layers", "diff_ids": [layer["digest"] for layer in layers]}}
    config_data = json.dumps(config, separators=(",", ":")).encode()
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "size": len(config_data), "digest": str(Digest.of(config_data))},
                "layers": layers}
    return config_data, json.dumps(manifest, separators=(",", ":")).encode()


def _signature_layers(repository: Repository, digest: Digest) -> list[dict[str, Any]]:
    """The payload layers of the current signature manifest of `digest` ([] when unsigned)."""
    tag = signature_tag(digest)
    try:
        current = repository.get_manifest(tag)
    except NotFound:
        return []
    doc = schema.load(current.data, current.media_type, f"{repository}:{tag}")
    return [layer for layer in doc.get("layers", []) if layer.get("mediaType") == PAYLOAD_TYPE]


def sign(repository: Repository, digest: Digest, key_path: str, docker_reference: str | None = None) -> Descriptor:
    """Sign manifest `digest` of `repository` with the key in `key_path` and push the signature
    (added to the signatures already there); the signature manifest's descriptor."""
    key = load_private_key(key_path)
    reference = docker_reference or str(repository)
    data = payload(reference, digest)
    signature = sign_payload(key, data)
    layer = {"mediaType": PAYLOAD_TYPE, "size": len(data), "digest": str(Digest.of(data)),
             "annotations": {SIGNATURE_ANNOTATION: signature}}
    # every signer's layer shares the payload digest; each keeps its own signature annotation
    config_data, manifest_data = signature_manifest([*_signature_layers(repository, digest), layer])
    for blob in (data, config_data):
        _put_blob(repository, blob)
    repository.put_manifest(signature_tag(digest), manifest_data, OCI_MANIFEST)
    return Descriptor(OCI_MANIFEST, Digest.of(manifest_data), len(manifest_data))


def _put_blob(repository: Repository, data: bytes) -> None:
    digest = Digest.of(data)
    if repository.blob_size(digest) is None:
        repository.finish_upload(repository.start_upload(), digest, data)


def verify(repository: Repository, digest: Digest, key_path: str) -> list[dict[str, Any]]:
    """The payloads signed by the key in `key_path` that vouch for manifest `digest`;
    IntegrityError when there is none (no signature, or none that verifies)."""
    key = load_public_key(key_path)
    layers = _signature_layers(repository, digest)
    if not layers:
        raise IntegrityError(f"{repository}@{digest}: no signature ({signature_tag(digest)} not found)")
    verified, problems = [], []
    for layer in layers[:MAX_SIGNATURES]:
        signature = (layer.get("annotations") or {}).get(SIGNATURE_ANNOTATION)
        if not signature or layer.get("size", MAX_PAYLOAD + 1) > MAX_PAYLOAD:
            problems.append(f"{layer.get('digest')}: no signature annotation or payload too large")
            continue
        blob = Digest.parse(layer["digest"])
        response, _ = repository.open_blob(blob)
        data = response.read_all(MAX_PAYLOAD, f"{repository}@{blob}")
        verify_bytes(data, blob, layer["size"], f"{repository}@{blob}")
        if not verify_payload(key, data, signature):
            problems.append(f"{blob}: signature does not verify with {key_path}")
            continue
        doc = schema.parse(data, f"{repository}@{blob}")
        critical = doc.get("critical") if isinstance(doc, dict) else None
        signed = (critical or {}).get("image", {}).get("docker-manifest-digest")
        if signed != str(digest) or (critical or {}).get("type") != SIGNATURE_TYPE:
            problems.append(f"{blob}: payload signs {signed}, not {digest}")
            continue
        verified.append(doc)
    if not verified:
        raise IntegrityError(f"{repository}@{digest}: no valid signature: {'; '.join(problems)}")
    return verified
