"""Helpers for the oci-unpack tests: layers built with tarfile, images in a layout, tree snapshots."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
from typing import Any

from oci.descriptor import OCI_CONFIG, OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD, OCI_MANIFEST, Descriptor
from oci.digest import Digest
from oci.layout import Layout

MTIME = 1_600_000_000


def info(name: str, type: bytes = tarfile.REGTYPE, mode: int = 0o644, uid: int = 0, gid: int = 0,
         linkname: str = "", xattrs: dict[str, bytes] | None = None, **extra: Any) -> tarfile.TarInfo:
    t = tarfile.TarInfo(name)
    t.type, t.mode, t.uid, t.gid, t.linkname, t.mtime = type, mode, uid, gid, linkname, MTIME
    t.uname = t.gname = ""
    if xattrs:
        t.pax_headers = {f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape") for k, v in xattrs.items()}
    for key, value in extra.items():
        setattr(t, key, value)
    return t


def reg(name: str, data: bytes = b"", **kw: Any) -> tuple[tarfile.TarInfo, bytes]:
    return info(name, **kw), data


def dir_(name: str, mode: int = 0o755, **kw: Any) -> tuple[tarfile.TarInfo, None]:
    return info(name, tarfile.DIRTYPE, mode, **kw), None


def sym(name: str, target: str, **kw: Any) -> tuple[tarfile.TarInfo, None]:
    return info(name, tarfile.SYMTYPE, 0o777, linkname=target, **kw), None


def link(name: str, target: str, **kw: Any) -> tuple[tarfile.TarInfo, None]:
    return info(name, tarfile.LNKTYPE, 0o644, linkname=target, **kw), None


def chr_(name: str, major: int, minor: int, mode: int = 0o666, **kw: Any) -> tuple[tarfile.TarInfo, None]:
    return info(name, tarfile.CHRTYPE, mode, devmajor=major, devminor=minor, **kw), None


def blk(name: str, major: int, minor: int, mode: int = 0o660, **kw: Any) -> tuple[tarfile.TarInfo, None]:
    return info(name, tarfile.BLKTYPE, mode, devmajor=major, devminor=minor, **kw), None


def fifo(name: str, mode: int = 0o644, **kw: Any) -> tuple[tarfile.TarInfo, None]:
    return info(name, tarfile.FIFOTYPE, mode, **kw), None


def tar_bytes(entries: list[tuple[tarfile.TarInfo, bytes | None]], format: int = tarfile.PAX_FORMAT) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=format) as tar:
        for t, data in entries:
            if data is not None:
                t.size = len(data)
                tar.addfile(t, io.BytesIO(data))
            else:
                tar.addfile(t)
    return out.getvalue()


def compress(raw: bytes, compression: str) -> tuple[bytes, str]:
    if compression == "gzip":
        return gzip.compress(raw, 1, mtime=0), OCI_LAYER_GZIP
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdCompressor().compress(raw), OCI_LAYER_ZSTD
    return raw, OCI_LAYER


def put_image(path: str, layers: list[bytes], tag: str = "latest", compression: str = "gzip",
              diff_ids: list[str] | None = None, media_type: str | None = None) -> Layout:
    """An image of raw tar `layers` (base first) in the layout at `path`, tagged `tag`."""
    layout = Layout.open(path, create=True)
    descs = []
    for raw in layers:
        blob, mt = compress(raw, compression)
        descs.append({"mediaType": media_type or mt, "digest": str(layout.put_bytes(blob)), "size": len(blob)})
    ids = diff_ids or [str(Digest.of(raw)) for raw in layers]
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": ids}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": str(layout.put_bytes(config)), "size": len(config)},
        "layers": descs,
    }).encode()
    layout.tag(tag, Descriptor(OCI_MANIFEST, layout.put_bytes(manifest), len(manifest)))
    return layout


def snapshot(root: str, contents: bool = True, with_root: bool = False,
             skip_xattrs: tuple[str, ...] = ()) -> dict[str, tuple]:
    """Every path under `root` (and `root` itself as ".", `with_root`) with type, mode, owner,
    size, link target, device, xattrs (but those starting with `skip_xattrs`) and content hash."""
    found: dict[str, tuple] = {}
    for folder, dirs, files in os.walk(root):
        names = dirs + files
        if with_root and folder == root:
            names = ["", *names]
        for name in names:
            path = os.path.join(folder, name) if name else root
            st = os.lstat(path)
            kind = stat.S_IFMT(st.st_mode)
            target = os.readlink(path) if stat.S_ISLNK(st.st_mode) else None
            try:
                xattrs = {k: os.getxattr(path, k, follow_symlinks=False)
                          for k in sorted(os.listxattr(path, follow_symlinks=False))
                          if not (skip_xattrs and k.startswith(skip_xattrs))}
            except OSError:
                xattrs = {}
            digest = None
            if stat.S_ISREG(st.st_mode) and contents:
                with open(path, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
            rdev = (os.major(st.st_rdev), os.minor(st.st_rdev)) if stat.S_ISCHR(st.st_mode) or \
                stat.S_ISBLK(st.st_mode) else None
            size = st.st_size if stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode) else None
            key = os.path.relpath(path, root) if name else "."
            found[key] = (kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, size, target, rdev,
                          tuple(xattrs.items()), digest)
    return found


def diff_trees(a: dict[str, tuple], b: dict[str, tuple]) -> list[str]:
    """Human-readable differences between two snapshots (empty when equal)."""
    out = []
    for path in sorted(set(a) | set(b)):
        if a.get(path) != b.get(path):
            out.append(f"{path}: {a.get(path)} != {b.get(path)}")
    return out
