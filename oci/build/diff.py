"""A layer of what a root filesystem changed compared to an image: `docker commit` for a
container whose rootfs is a plain directory (unpacked, not an overlay).

The image's layers are read (verified against their digests) into the state they leave:
every path with its type, mode, owner, size, mtime, link target, device numbers and, for
regular files, a sha256 of the content. The rootfs is then walked: a path that is new or
differs in any of these goes into the layer; a path of the image that the rootfs lost
becomes a whiteout (only the topmost one of a deleted tree).
"""

from __future__ import annotations

import gzip
import hashlib
import heapq
import os
import posixpath
import stat
import tarfile
from dataclasses import dataclass
from typing import BinaryIO, Iterator, cast

from oci.build.entry import OPAQUE_WHITEOUT, WHITEOUT_PREFIX, Entry, sort_key
from oci.build.source import from_directory
from oci.descriptor import LAYERS
from oci.errors import IntegrityError, InvalidInput
from oci.image import Image


@dataclass(frozen=True)
class State:
    """What the image holds at one path."""

    type: bytes
    mode: int
    uid: int
    gid: int
    mtime: int
    size: int = 0
    linkname: str = ""
    rdev: tuple[int, int] = (0, 0)
    sha256: str = ""


def image_state(image: Image | None) -> dict[str, State]:
    """Path -> state after applying every layer of `image` (whiteouts honoured)."""
    state: dict[str, State] = {}
    if image is None:
        return state
    for layer, diff_id in zip(image.layers, image.diff_ids, strict=True):
        with image.layout.open_blob(layer) as blob:
            hasher = diff_id.hasher()
            # read-only streams, where typeshed's IO types (tarfile's stream mode, GzipFile) also ask
            # for seek and write, which reading never calls
            stream = _Hashing(_decompressed(cast(BinaryIO, blob), LAYERS[layer.media_type]), hasher)
            _apply_layer(state, cast(BinaryIO, stream), str(layer.digest))
            while stream.read(1 << 20):
                pass
            blob.read()  # reach EOF: the blob's digest is checked
        if hasher.hexdigest() != diff_id.hex:
            raise IntegrityError(f"layer {layer.digest}: uncompressed content does not match diff_id {diff_id}")
    return state


def _apply_layer(state: dict[str, State], stream: BinaryIO, label: str) -> None:
    added: set[str] = set()
    try:
        archive = tarfile.open(fileobj=stream, mode="r|")
        for member in archive:
            name = posixpath.normpath("/" + member.name).lstrip("/")
            if ".." in member.name.split("/"):
                raise IntegrityError(f"layer {label}: tar entry {member.name!r}: path leaves the root")
            parent, base = posixpath.split(name)
            if base == OPAQUE_WHITEOUT:
                _remove_below(state, parent, keep=added)
            elif base.startswith(WHITEOUT_PREFIX):
                target = posixpath.join(parent, base[len(WHITEOUT_PREFIX):])
                if target not in added:  # a whiteout hides lower layers only
                    state.pop(target, None)
                _remove_below(state, target, keep=added)
            elif name not in ("", "."):
                state[name] = _state_of(member, archive, state)
                added.add(name)
    except tarfile.TarError as err:
        raise IntegrityError(f"layer {label}: not a valid tar archive: {err}") from None


def _remove_below(state: dict[str, State], folder: str, keep: set[str]) -> None:
    prefix = folder + "/" if folder else ""
    for path in [p for p in state if p.startswith(prefix) and p not in keep]:
        del state[path]


def _state_of(member: tarfile.TarInfo, archive: tarfile.TarFile, state: dict[str, State]) -> State:
    if member.islnk():
        target = posixpath.normpath("/" + member.linkname).lstrip("/")
        if target in state:
            return state[target]
    digest = ""
    if member.isreg():
        hasher = hashlib.sha256()
        source = archive.extractfile(member)
        if source is None:  # a regular member always has content: a tarfile that says otherwise is broken
            raise IntegrityError(f"{member.name}: a regular file without content")
        while chunk := source.read(1 << 20):
            hasher.update(chunk)
        digest = hasher.hexdigest()
    kind = tarfile.REGTYPE if member.isreg() or member.islnk() else member.type
    return State(kind, member.mode & 0o7777, member.uid, member.gid, int(member.mtime), member.size if member.isreg()
                 else 0, member.linkname if member.issym() else "", (member.devmajor, member.devminor)
                 if member.isdev() else (0, 0), digest)


def changes(rootfs: str, image: Image | None) -> Iterator[Entry]:
    """The entries of a layer that turns `image` into `rootfs`, in layer order."""
    base = image_state(image)
    entries = list(from_directory(rootfs))
    present = {entry.name: entry for entry in entries}
    changed = [entry for entry in entries if _differs(rootfs, entry, base.get(entry.name))]
    whiteouts = []
    for path in base:
        parent, name = posixpath.split(path)
        if path in present or (parent and (parent not in present or present[parent].type != tarfile.DIRTYPE)):
            continue
        whiteouts.append(Entry(posixpath.join(parent, WHITEOUT_PREFIX + name), tarfile.REGTYPE, mode=0o600))
    whiteouts.sort(key=lambda entry: sort_key(entry.name))
    return heapq.merge(whiteouts, changed, key=lambda entry: sort_key(entry.name))


def _differs(rootfs: str, entry: Entry, before: State | None) -> bool:
    if before is None:
        return True
    path = os.path.join(rootfs, entry.name)
    st = os.lstat(path)
    kind = tarfile.REGTYPE if entry.type == tarfile.LNKTYPE else entry.type
    now = (kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, int(st.st_mtime))
    if now != (before.type, before.mode, before.uid, before.gid, before.mtime):
        return True
    if kind == tarfile.REGTYPE:
        return st.st_size != before.size or _sha256(path) != before.sha256
    if kind == tarfile.SYMTYPE:
        return os.readlink(path) != before.linkname
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        return (os.major(st.st_rdev), os.minor(st.st_rdev)) != before.rdev
    return False


def _sha256(path: str) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            hasher.update(chunk)
    return hasher.hexdigest()


class _Hashing:
    """A reader that hashes what it passes on."""

    def __init__(self, raw: BinaryIO, hasher: hashlib._Hash) -> None:
        self._raw, self._hasher = raw, hasher

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self._hasher.update(data)
        return data


def _decompressed(blob: BinaryIO, compression: str) -> BinaryIO:
    if compression == "gzip":
        return cast(BinaryIO, gzip.GzipFile(fileobj=blob, mode="rb"))  # a BufferedIOBase, read as a stream
    if compression == "zstd":
        import zstandard  # a third-party package: only for zstd layers

        return zstandard.ZstdDecompressor().stream_reader(blob, read_across_frames=True)
    if compression:
        raise InvalidInput(f"unsupported layer compression {compression!r}")
    return blob
