"""Small OCI images for the oci-bundle tests: a rootfs directory and a layout holding it as one layer."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import tarfile
from pathlib import Path

from oci.descriptor import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, Descriptor
from oci.digest import Digest
from oci.layout import Layout

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
alice:x:1000:1000:Alice:/home/alice:/bin/sh
bob:x:1001:1001::/home/bob:/bin/sh
nohome:x:1002:1002:::/bin/sh
"""
GROUP = """root:x:0:
wheel:x:10:alice,root
audio:x:29:alice
staff:x:50:bob
alice:x:1000:
bob:x:1001:
nohome:x:1002:
"""
BUSYBOX = "/bin/busybox"
APPLETS = ["sh", "echo", "cat", "id", "ls", "sleep", "true", "false", "env", "pwd", "touch", "mkdir", "hostname",
           "unshare", "grep"]


def make_rootfs(root: Path, busybox: bool = False, files: dict[str, bytes] | None = None) -> Path:
    """A rootfs with /etc/passwd, /etc/group (and a static busybox with its applets)."""
    for folder in ("etc", "bin", "tmp", "home/alice", "root", "proc", "sys", "dev"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "etc/passwd").write_text(PASSWD)
    (root / "etc/group").write_text(GROUP)
    if busybox:
        shutil.copy2(BUSYBOX, root / "bin/busybox")
        for applet in APPLETS:
            os.symlink("busybox", root / "bin" / applet)
    for name, data in (files or {}).items():
        path = root / name.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def _layer(root: Path) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(root.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(root)), recursive=False)
    return raw.getvalue()


def _put(layout: Layout, media_type: str, data: bytes) -> Descriptor:
    return Descriptor(media_type, layout.put_bytes(data), len(data))


def make_image(tmp: Path, config: dict | None = None, busybox: bool = False, files: dict[str, bytes] | None = None,
               tag: str = "latest", top: dict | None = None) -> tuple[str, Path]:
    """(layout path, rootfs path): an image whose `config` section is `config`, tagged `tag`."""
    rootfs = make_rootfs(tmp / "src-rootfs", busybox, files)
    layout = Layout.open(str(tmp / "layout"), create=True)
    tar = _layer(rootfs)
    blob = gzip.compress(tar, compresslevel=1)
    layer = _put(layout, OCI_LAYER_GZIP, blob)
    image_config = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers",
                                                                       "diff_ids": [str(Digest.of(tar))]},
                    "config": config or {}, **(top or {})}
    config_desc = _put(layout, OCI_CONFIG, json.dumps(image_config).encode())
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_desc.to_json(),
                "layers": [layer.to_json()]}
    layout.tag(tag, _put(layout, OCI_MANIFEST, json.dumps(manifest).encode()))
    return layout.path, rootfs
