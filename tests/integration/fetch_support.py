"""Small OCI images made in the tests (for oci-fetch): layers from in-memory files, written
into an OCI layout that skopeo can push, plus helpers to compare layouts."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def _put(layout: str, data: bytes) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    folder = os.path.join(layout, "blobs", "sha256")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, digest), "wb") as f:
        f.write(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def layer(files: dict[str, bytes]) -> tuple[bytes, str]:
    """A gzipped tar layer of `files` and its diff_id."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(content), 1_700_000_000, 0o644
            tar.addfile(info, io.BytesIO(content))
    tar_bytes = raw.getvalue()
    return gzip.compress(tar_bytes, mtime=0), "sha256:" + hashlib.sha256(tar_bytes).hexdigest()


def image(layout: str, layers: list[dict[str, bytes]], arch: str = "amd64", label: str = "") -> dict:
    """Write an image's blobs into `layout`; return its manifest descriptor (not yet in index.json)."""
    os.makedirs(layout, exist_ok=True)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    descriptors, diff_ids = [], []
    for files in layers:
        blob, diff_id = layer(files)
        descriptors.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **_put(layout, blob)})
        diff_ids.append(diff_id)
    config = {"architecture": arch, "os": "linux", "config": {"Labels": {"test": label}} if label else {},
              "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    config_desc = {"mediaType": "application/vnd.oci.image.config.v1+json",
                   **_put(layout, json.dumps(config).encode())}
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_desc, "layers": descriptors}
    return {"mediaType": OCI_MANIFEST, **_put(layout, json.dumps(manifest).encode()),
            "platform": {"os": "linux", "architecture": arch}}


def index(layout: str, manifests: list[dict]) -> dict:
    """Write an index of `manifests` into `layout`; return its descriptor."""
    doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
    return {"mediaType": OCI_INDEX, **_put(layout, json.dumps(doc).encode())}


def tag(layout: str, name: str, descriptor: dict) -> None:
    """Set index.json to hold `descriptor` tagged `name` (replacing other entries of that name)."""
    path = os.path.join(layout, "index.json")
    doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    if os.path.exists(path):
        with open(path) as f:
            doc = json.load(f)
    entry = {k: v for k, v in descriptor.items() if k != "platform"}
    entry["annotations"] = {"org.opencontainers.image.ref.name": name}
    doc["manifests"] = [m for m in doc["manifests"]
                        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != name] + [entry]
    with open(path, "w") as f:
        json.dump(doc, f)


def blob_files(layout: str) -> dict[str, bytes]:
    """Every blob of a layout: `sha256/<hex>` -> content."""
    found = {}
    root = os.path.join(layout, "blobs")
    for alg in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        for name in sorted(os.listdir(os.path.join(root, alg))):
            with open(os.path.join(root, alg, name), "rb") as f:
                found[f"{alg}/{name}"] = f.read()
    return found


def snapshot(path: str) -> dict[str, bytes]:
    """Every file under `path` (relative name -> content), locks and empty dirs aside."""
    found = {}
    for folder, _dirs, files in os.walk(path):
        for name in files:
            full = os.path.join(folder, name)
            if name.endswith(".lock"):
                continue
            with open(full, "rb") as f:
                found[os.path.relpath(full, path)] = f.read()
    return found
