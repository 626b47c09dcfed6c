"""Where layer entries come from: a directory, an overlayfs upper directory, a tarball.

Every source yields its entries in `entry.sort_key` order, whatever order the filesystem
or the archive had, so the same content always gives the same layer. Sockets are skipped
(a tar cannot hold them).
"""

from __future__ import annotations

import bz2
import errno
import gzip
import lzma
import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
from typing import IO, BinaryIO, Callable, Iterator

from oci.build.entry import OPAQUE_WHITEOUT, OVERLAY_XATTR_PREFIXES, WHITEOUT_PREFIX, Entry, keeps_xattr, sort_key
from oci.errors import IntegrityError, InvalidInput, NotFound, OciError, Unsupported

TYPE_CHECKING = False
if TYPE_CHECKING:
    from oci.digest import Reader  # an interface for type checkers only

OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")
UNSUPPORTED_OVERLAY_XATTRS = (".overlay.metacopy", ".overlay.redirect")
_FILE_TYPES = {
    tarfile.DIRTYPE: tarfile.DIRTYPE, tarfile.SYMTYPE: tarfile.SYMTYPE, tarfile.CHRTYPE: tarfile.CHRTYPE,
    tarfile.BLKTYPE: tarfile.BLKTYPE, tarfile.FIFOTYPE: tarfile.FIFOTYPE,
}


# -- directories -------------------------------------------------------------


def from_directory(root: str, upper: bool = False) -> Iterator[Entry]:
    """The entries of the tree under `root` (not `root` itself).

    With `upper`, `root` is an overlayfs upper directory: a character device 0/0 becomes
    the whiteout `.wh.NAME`, and a directory marked opaque gets `.wh..wh..opq`.
    """
    if not os.path.isdir(root):
        raise NotFound(f"{root}: no such directory")
    return _walk(root, "", {}, upper)


def _walk(root: str, prefix: str, links: dict[tuple[int, int], str], upper: bool) -> Iterator[Entry]:
    """Depth first, parents before children, each folder's children in sort order; a loop,
    not recursion, so that a tree of any depth (a RUN's `mkdir -p` of 2,000 levels) is walked."""
    stack = [iter(_children(root, prefix, upper))]
    while stack:
        child = next(stack[-1], None)
        if child is None:
            stack.pop()
            continue
        rel, path, st, whiteout = child
        if whiteout:
            yield Entry(rel, tarfile.REGTYPE, mode=0o600, mtime=int(st.st_mtime))
            continue
        entry = _entry(path, rel, st, links, upper)
        if entry is None:
            continue
        yield entry
        if entry.type == tarfile.DIRTYPE:
            if upper and _is_opaque(path):
                yield Entry(f"{rel}/{OPAQUE_WHITEOUT}", tarfile.REGTYPE, mode=0o600, mtime=int(st.st_mtime))
            stack.append(iter(_children(root, rel, upper)))


def _children(root: str, prefix: str, upper: bool) -> list[tuple[str, str, os.stat_result, bool]]:
    """(name in the layer, host path, lstat, whether a whiteout) of a folder's children, sorted."""
    folder = os.path.join(root, prefix) if prefix else root
    try:
        names = os.listdir(folder)
    except OSError as err:
        raise OciError(f"{folder}: cannot list: {err.strerror}") from None
    children = []
    for name in names:
        path = os.path.join(folder, name)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue  # gone since the listing
        whiteout = upper and stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
        out = WHITEOUT_PREFIX + name if whiteout else name
        children.append((sort_key(out), f"{prefix}/{out}" if prefix else out, path, st, whiteout))
    children.sort(key=lambda child: child[0])
    return [(rel, path, st, whiteout) for _, rel, path, st, whiteout in children]


def entry_of(path: str, rel: str, st: os.stat_result, links: dict[tuple[int, int], str]) -> Entry | None:
    """The entry of one file at `path` (named `rel` in the layer; None for a socket). `links`
    maps (device, inode) to the first name seen, so later names become hard links to it."""
    return _entry(path, rel, st, links, False)


def _entry(path: str, rel: str, st: os.stat_result, links: dict[tuple[int, int], str], upper: bool) -> Entry | None:
    mode = st.st_mode
    xattrs = _xattrs(path)
    if upper and (refused := [name for name in xattrs if name.endswith(UNSUPPORTED_OVERLAY_XATTRS)]):
        raise Unsupported(f"{path}: overlayfs {refused[0]} (metacopy or redirect_dir mounts): "
                          f"the content is in a lower layer; commit with --diff on the merged rootfs instead")
    entry = Entry(rel, tarfile.REGTYPE, mode=stat.S_IMODE(mode), uid=st.st_uid, gid=st.st_gid,
                  mtime=int(st.st_mtime), xattrs={k: v for k, v in xattrs.items() if keeps_xattr(k)})
    if not stat.S_ISDIR(mode) and st.st_nlink > 1:
        first = links.setdefault((st.st_dev, st.st_ino), rel)
        if first != rel:
            entry.type, entry.linkname = tarfile.LNKTYPE, first
            return entry
    if stat.S_ISREG(mode):
        entry.size = st.st_size
        entry.opener = lambda: _open_file(path)
    elif stat.S_ISDIR(mode):
        entry.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(mode):
        entry.type, entry.linkname = tarfile.SYMTYPE, os.readlink(path)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        entry.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
        entry.devmajor, entry.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    elif stat.S_ISFIFO(mode):
        entry.type = tarfile.FIFOTYPE
    else:
        return None  # a socket
    return entry


def _open_file(path: str) -> BinaryIO:
    try:
        return os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb")
    except OSError as err:
        raise OciError(f"{path}: cannot read: {err.strerror}") from None


def _xattrs(path: str) -> dict[str, bytes]:
    """The file's extended attributes we may keep, and overlayfs' own."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
        return {name: os.getxattr(path, name, follow_symlinks=False) for name in sorted(names)
                if keeps_xattr(name) or name.startswith(OVERLAY_XATTR_PREFIXES)}
    except OSError as err:
        if err.errno in (errno.ENOTSUP, errno.EPERM, errno.ENODATA):
            return {}
        raise OciError(f"{path}: cannot read extended attributes: {err.strerror}") from None


def _is_opaque(path: str) -> bool:
    for name in OPAQUE_XATTRS:
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            continue
    return False


# -- tarballs ----------------------------------------------------------------

_MAGIC = {b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz"}


def from_tarball(source: str | BinaryIO, tmp_dir: str | None = None, name: str = "<stdin>") -> Iterator[Entry]:
    """The entries of a tar archive (plain, gzip, zstd, bzip2 or xz), re-sorted.

    `source` is a path or an open binary stream (named `name` in errors). The last entry
    of a name wins, as when extracting; hard links are regrouped so that the first name in
    the new order carries the content. Unsafe names are refused.
    """
    if isinstance(source, str) and not os.path.isfile(source):
        raise NotFound(f"{source}: no such file")
    return _tar_entries(source, source if isinstance(source, str) else name, tmp_dir)


def _tar_entries(source: str | BinaryIO, path: str, tmp_dir: str | None) -> Iterator[Entry]:
    with _seekable_tar(source, path, tmp_dir) as raw:
        try:
            archive = tarfile.open(fileobj=raw, mode="r:")
            members = archive.getmembers()
        except tarfile.TarError as err:
            raise InvalidInput(f"{path}: not a valid tar archive: {err}") from None
        latest: dict[str, tarfile.TarInfo] = {}
        for member in members:
            name = _safe_name(path, member.name)
            if name:
                latest[name] = member
        groups = _link_groups(path, latest)
        for name in sorted(latest, key=sort_key):
            yield _tar_entry(path, archive, name, latest, groups)


def _member_opener(path: str, archive: tarfile.TarFile, member: tarfile.TarInfo) -> Callable[[], IO[bytes]]:
    """How to read a regular member's content."""

    def opener() -> IO[bytes]:
        found = archive.extractfile(member)
        if found is None:
            raise Unsupported(f"{path}: tar entry {member.name!r}: no content to read")
        return found

    return opener


def _tar_entry(path: str, archive: tarfile.TarFile, name: str, latest: dict[str, tarfile.TarInfo],
               groups: dict[str, list[str]]) -> Entry:
    member = latest[name]
    group = groups.get(name)
    if group and group[0] != name:
        return Entry(name, tarfile.LNKTYPE, mode=member.mode, uid=member.uid, gid=member.gid,
                     mtime=int(member.mtime), linkname=group[0])
    while member.islnk():  # the first name of a group carries the content of the link target
        member = latest[_safe_name(path, member.linkname)]
    xattrs = {key[len("SCHILY.xattr."):]: value.encode("utf-8", "surrogateescape")
              for key, value in sorted(member.pax_headers.items()) if key.startswith("SCHILY.xattr.")}
    entry = Entry(name, tarfile.REGTYPE, mode=member.mode, uid=member.uid, gid=member.gid, mtime=int(member.mtime),
                  xattrs={k: v for k, v in xattrs.items() if keeps_xattr(k)})
    if member.isreg():
        entry.size = member.size
        entry.opener = _member_opener(path, archive, member)
    elif member.type in _FILE_TYPES:
        entry.type = _FILE_TYPES[member.type]
        entry.linkname = member.linkname if member.issym() else ""
        entry.devmajor, entry.devminor = (member.devmajor, member.devminor) if member.isdev() else (0, 0)
    else:
        raise Unsupported(f"{path}: tar entry {member.name!r}: unsupported type {member.type!r}")
    return entry


def _link_groups(path: str, latest: dict[str, tarfile.TarInfo]) -> dict[str, list[str]]:
    """Hard-link name -> every name sharing its content, in layer order (the target included)."""
    members: dict[str, set[str]] = {}
    for name, member in latest.items():
        if not member.islnk():
            continue
        target, seen = name, set()
        while latest[target].islnk():
            seen.add(target)
            target = _safe_name(path, latest[target].linkname)
            if target not in latest or target in seen:
                raise IntegrityError(f"{path}: tar entry {name!r}: hard link to a missing entry")
            if latest[target].isdir():
                raise IntegrityError(f"{path}: tar entry {name!r}: hard link to a directory")
        members.setdefault(target, {target}).add(name)
    groups: dict[str, list[str]] = {}
    for names in members.values():
        ordered = sorted(names, key=sort_key)
        for name in ordered:
            groups[name] = ordered
    return groups


def _safe_name(path: str, name: str) -> str:
    """A tar entry name made relative; refuse names that climb out of the root."""
    cleaned = posixpath.normpath("/" + name).lstrip("/")
    if ".." in name.split("/") or "\0" in name:
        raise IntegrityError(f"{path}: tar entry {name!r}: path leaves the root")
    return "" if cleaned in ("", ".") else cleaned


class _seekable_tar:
    """The archive as a seekable, uncompressed file (a temporary copy when compressed or piped)."""

    def __init__(self, source: str | BinaryIO, path: str, tmp_dir: str | None) -> None:
        self.source, self.path, self.tmp_dir = source, path, tmp_dir
        self.opened: list[BinaryIO] = []

    def __enter__(self) -> BinaryIO:
        if isinstance(self.source, str):
            source: BinaryIO = open(self.source, "rb")
            self.opened.append(source)
        else:
            source = self.source
        head = source.peek(6)[:6] if hasattr(source, "peek") else b""
        kind = next((k for magic, k in _MAGIC.items() if head.startswith(magic)), None)
        if kind is None and source.seekable():
            return source
        spool = tempfile.TemporaryFile(dir=self.tmp_dir)
        self.opened.append(spool)
        try:
            shutil.copyfileobj(_decompressing(source, kind), spool, 1 << 20)
        except Exception as err:  # each decompressor has its own error classes
            raise InvalidInput(f"{self.path}: cannot decompress ({kind or 'tar'}): {err}") from None
        spool.seek(0)
        return spool

    def __exit__(self, *exc: object) -> None:
        for f in self.opened:
            f.close()


def _decompressing(source: BinaryIO, kind: str | None) -> Reader:
    if kind == "gzip":
        return gzip.GzipFile(fileobj=source, mode="rb")
    if kind == "zstd":
        import zstandard  # a third-party package: only for zstd layers

        return zstandard.ZstdDecompressor().stream_reader(source, read_across_frames=True)
    if kind == "bzip2":
        return bz2.BZ2File(source)
    if kind == "xz":
        return lzma.LZMAFile(source)
    return source
