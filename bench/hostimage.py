"""A realistic multi-layer gzip image built from host folders, cached for the registry benchmarks."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile

from oci.descriptor import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, Descriptor
from oci.layout import Layout

EPOCH = 1_700_000_000
SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") else None


def tar_folders(folders: list[str], target: str) -> None:
    """A deterministic tar of host folders: sorted, owners 0, mtimes clamped, no special files.

    Folders missing on this host and files we may not read are skipped.
    """
    def clean(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        if not (info.isfile() or info.isdir() or info.issym()):
            return None
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mtime = min(int(info.mtime), EPOCH)
        return info

    with tarfile.open(target, "w", format=tarfile.PAX_FORMAT) as tar:
        for folder in folders:
            if not os.path.isdir(folder):
                continue
            for parent, dirs, files in os.walk(folder):
                dirs.sort()
                for name in [""] + sorted(files):
                    path = os.path.join(parent, name) if name else parent
                    if not os.path.islink(path) and not os.access(path, os.R_OK):
                        continue
                    try:
                        tar.add(path, arcname=path.lstrip("/"), recursive=False, filter=clean)
                    except OSError:
                        continue


def build(cache: str, tag: str, layers: list[list[str]], min_size: int) -> None:
    """Build the image (one gzip layer per entry of `layers`, base first) into layout `cache`."""
    work = tempfile.mkdtemp(prefix="bench-image-", dir=SCRATCH)
    try:
        layout = Layout.open(os.path.join(work, "layout"), create=True)
        descriptors, diff_ids = [], []
        for i, folders in enumerate(layers):
            raw = os.path.join(work, f"layer{i}.tar")
            tar_folders(folders, raw)
            with open(raw, "rb") as f:
                diff_ids.append("sha256:" + hashlib.file_digest(f, "sha256").hexdigest())
            subprocess.run(["pigz", "-n", "-6", raw], check=True)  # replaces raw with raw.gz
            with open(raw + ".gz", "rb") as f:
                digest, size = layout.put_blob(f)
            os.unlink(raw + ".gz")
            descriptors.append(Descriptor(OCI_LAYER_GZIP, digest, size))
        total = sum(d.size for d in descriptors)
        if total < min_size:
            raise SystemExit(f"the benchmark image is only {total / 1e6:.1f} MB: this host lacks the folders")
        config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
                             "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
        manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                               "config": Descriptor(OCI_CONFIG, layout.put_bytes(config), len(config)).to_json(),
                               "layers": [d.to_json() for d in descriptors]}).encode()
        layout.tag(tag, Descriptor(OCI_MANIFEST, layout.put_bytes(manifest), len(manifest)))
        os.makedirs(os.path.dirname(cache), exist_ok=True)
        shutil.rmtree(cache, ignore_errors=True)
        shutil.copytree(layout.path, cache, ignore=shutil.ignore_patterns(".ocikit"))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def size(cache: str, tag: str) -> tuple[int, int]:
    """(compressed bytes, layer count) of the cached image."""
    layout = Layout.open(cache)
    manifest = json.loads(layout.read_blob(layout.resolve(tag)))
    return sum(layer["size"] for layer in manifest["layers"]), len(manifest["layers"])
