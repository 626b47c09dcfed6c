"""`cp` between a container and the host, as `docker cp` does.

Paths inside the container are resolved as the container sees them: under a bind mount (a named
volume, a host folder) they reach the mount's source, elsewhere the container's overlay rootfs.
Into the container, files travel as a tar stream applied by the layer code (oci.unpack.apply):
every entry is created beneath the root with openat2's RESOLVE_IN_ROOT, so no symlink in the
container can send a write outside it (the tar is verified as a layer of its own digest; a host
file named `.wh.NAME` is read as the layer format's whiteout). Out of the container, the source is opened the same way.
A running container is paused meanwhile, as Docker does since CVE-2018-15664: none of its
processes can swap a folder for a symlink while the copy walks the tree.
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
import stat
import sys
import tarfile
import tempfile
from typing import Any, BinaryIO

from oci.descriptor import OCI_LAYER, Descriptor
from oci.digest import Digest
from oci.errors import InvalidInput, NotFound, UsageError

from .engine import Engine


def split(text: str) -> tuple[str | None, str]:
    """(container, path) of `CONTAINER:PATH`, or (None, path) for a host path (or `-`)."""
    if text == "-" or text.startswith(("/", ".")):
        return None, text
    name, sep, path = text.partition(":")
    if not sep:
        return None, text
    return name, path or "/"


def where(engine: Engine, cid: str, path: str, files: bool = False) -> tuple[str, str]:
    """(host root, path inside it) for the container path `path`: a bind mount's source or the rootfs.
    With `files` (reading), a file bind mount at `path` itself counts too (/etc/hostname, /etc/hosts
    and /etc/resolv.conf are the bundle's files, empty placeholders in the rootfs)."""
    from oci.runtime import config as config_mod

    folder = engine.containers.folder(cid)
    config = config_mod.load(folder)
    path = posixpath.normpath(posixpath.join("/", path))
    best = None
    for mount in config.get("mounts", []):
        if mount.get("type") != "bind" and "bind" not in mount.get("options", []) and "rbind" not in mount.get(
                "options", []):
            continue
        dest = posixpath.normpath(mount["destination"])
        if (path == dest or path.startswith(dest.rstrip("/") + "/")) and os.path.isdir(mount["source"]) or (
                files and path == dest and os.path.isfile(mount["source"])):
            if best is None or len(dest) > len(best[0]):
                best = (dest, mount["source"])
    if best is not None:
        if not os.path.isdir(best[1]):
            return os.path.dirname(best[1]), os.path.basename(best[1])
        return best[1], posixpath.relpath(path, best[0])
    root = os.path.join(folder, config["root"]["path"])
    if not os.path.ismount(root):
        from oci.bundle import rootfs as rootfs_module

        spec = (config.get("annotations") or {}).get("org.ocikit.rootfs.mount")
        if spec:
            rootfs_module.ensure_mounted(json.loads(spec), root)
    return root, path.lstrip("/") or "."


def copy(engine: Engine, source: str, destination: str, follow: bool = False) -> None:
    src_container, src_path = split(source)
    dst_container, dst_path = split(destination)
    if (src_container is None) == (dst_container is None):
        raise UsageError("copying between containers, or between host paths, is not supported: one side must be "
                         "CONTAINER:PATH")
    cid = engine.containers.resolve(src_container if src_container is not None else str(dst_container))
    with _paused(engine, cid):
        if src_container is not None:
            root, inside = where(engine, cid, src_path, files=True)
            copy_out(root, inside, dst_path, follow)
        else:
            root, inside = where(engine, cid, dst_path)
            copy_in(src_path, root, inside, follow)


class _paused:  # noqa: N801  (used like a function: `with _paused(engine, cid):`)
    """The container frozen for the block when it runs (and not paused already)."""

    def __init__(self, engine: Engine, cid: str) -> None:
        self.engine, self.cid, self.froze = engine, cid, False

    def __enter__(self) -> None:
        from oci.runtime import control

        if self.engine.runtime_status(self.cid)[0] == "running":
            control.pause(self.engine.runtime_store(), self.cid)
            self.froze = True

    def __exit__(self, *exc: object) -> None:
        if self.froze:
            from oci.runtime import control

            control.resume(self.engine.runtime_store(), self.cid)


def copy_out(root: str, inside: str, destination: str, follow: bool) -> None:
    from oci.linux.inroot import open_in_root

    fd = open_in_root(root, inside)
    try:
        source = f"/proc/self/fd/{fd}"
        base = posixpath.basename(inside.rstrip("/")) or "."
        if destination == "-":
            # `source` is a magic link (tarfile would store it as a symlink): a folder is read
            # through `source/.`, a file through its fd
            with tarfile.open(fileobj=sys.stdout.buffer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                if stat.S_ISDIR(os.fstat(fd).st_mode):
                    tar.add(source + "/.", arcname=base, recursive=True)
                else:
                    with os.fdopen(os.dup(fd), "rb") as file:
                        tar.addfile(tar.gettarinfo(arcname=base, fileobj=file), file)
            return
        target = destination
        if os.path.isdir(destination):
            target = os.path.join(destination, base)
        _copy_tree(source, target)
    finally:
        os.close(fd)


def _copy_tree(source: str, target: str) -> None:
    if os.path.isdir(source):
        shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
    else:
        shutil.copy2(source, target, follow_symlinks=True)


def copy_in(source: str, root: str, inside: str, follow: bool) -> None:
    """Copy the host `source` (or a tar on stdin for `-`) to `inside` of `root`, as `docker cp` places it."""
    from oci.unpack.safepath import Root

    with Root(root) as tree:
        target = inside.rstrip("/") or "."
        found = tree.lstat(target) if target != "." else os.lstat(root)
        is_dir = found is not None and (found.st_mode & 0o170000) == 0o040000
        with tempfile.NamedTemporaryFile(prefix=".ocikit-cp-", dir=os.path.dirname(root)) as spool:
            if source == "-":
                if not is_dir:
                    raise InvalidInput(f"{inside}: the destination of a tar stream must be a directory")
                _relabel(sys.stdin.buffer, spool, target)
            else:
                if not os.path.lexists(source):
                    raise NotFound(f"{source}: no such file or directory")
                name = target if not is_dir else posixpath.join(target, os.path.basename(source.rstrip("/")))
                if found is None and inside.endswith("/") and not os.path.isdir(source):
                    raise NotFound(f"{inside}: no such directory")
                with tarfile.open(fileobj=spool, mode="w", format=tarfile.PAX_FORMAT, dereference=follow) as tar:
                    tar.add(source, arcname=name if name != "." else ".", recursive=True)
            spool.flush()
            _apply(tree, spool.name)


def _apply(tree: object, tar_path: str) -> None:
    """Apply an uncompressed tar file to `tree` with the layer code, as a layer of its own digest."""
    from oci.unpack.apply import apply_layer
    from oci.unpack.decompress import LayerStream
    from oci.unpack.options import Budget, Options

    hasher = Digest.parse("sha256:" + "0" * 64).hasher()
    with open(tar_path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            hasher.update(chunk)
    digest = Digest("sha256", hasher.hexdigest())
    size = os.path.getsize(tar_path)
    stream = LayerStream(tar_path, Descriptor(OCI_LAYER, digest, size), digest, size)
    try:
        apply_layer(tree, stream, Options(), Budget(size, 10_000_000))  # type: ignore[arg-type]
    finally:
        stream.close()


def _relabel(stream: BinaryIO, spool: Any, prefix: str) -> None:
    """Copy a tar stream, its entries moved under `prefix`."""
    with tarfile.open(fileobj=stream, mode="r|*") as source, \
            tarfile.open(fileobj=spool, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member in source:
            member.name = posixpath.normpath(posixpath.join(prefix, member.name.lstrip("/")))
            if member.islnk():
                member.linkname = posixpath.normpath(posixpath.join(prefix, member.linkname.lstrip("/")))
            tar.addfile(member, source.extractfile(member) if member.isreg() else None)
