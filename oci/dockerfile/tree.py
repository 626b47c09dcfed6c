"""Writing files into a stage's root filesystem, every path resolved inside it.

A Dockerfile's paths are container paths: a symlink on the way (`/var/run -> /run`) is
followed as the container would follow it, inside the root, never to the host's files.
Each directory is opened with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) from the
root's fd; the last component is then created, replaced or changed relative to its parent
fd. Metadata is set in the order that keeps it: owner first (chown clears setuid bits and
security.capability), then mode and xattrs, times last (directories once their children
are written).
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
import tarfile
from dataclasses import dataclass
from typing import IO

from oci.build.entry import WHITEOUT_PREFIX, Entry
from oci.errors import IntegrityError, InvalidInput, OciError
from oci.linux.kernel import RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, kernel

_RESOLVE = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_PATH = os.O_PATH | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
CHUNK = 1 << 20
RETRIES = 100  # openat2's EAGAIN, see open_in_root


def open_in_root(root_fd: int, rel: str, flags: int) -> int:
    """openat2 of `rel` with symlinks and `..` resolved inside `root_fd`. The kernel answers
    EAGAIN when a rename or mount anywhere on the host raced a `..` of the walk (a symlink
    like `lib -> ../usr/lib` on a busy machine): asked again, as openat2(2) says to."""
    for _ in range(RETRIES):
        try:
            return kernel().openat2(root_fd, rel, flags, _RESOLVE)
        except OSError as err:
            if err.errno != errno.EAGAIN:
                raise
    return kernel().openat2(root_fd, rel, flags, _RESOLVE)


def shown(path: str) -> str:
    """A container path for a message: a very long one shortened in the middle."""
    text = "/" + clean(path)
    return text if len(text) <= 200 else f"{text[:100]}...{text[-80:]}"


def clean(path: str) -> str:
    """A container path as a relative, normalised path inside the root ("" is the root)."""
    cleaned = posixpath.normpath("/" + path).lstrip("/")
    return "" if cleaned == "." else cleaned


@dataclass(frozen=True)
class Owner:
    """A numeric owner for new files and directories."""

    uid: int = 0
    gid: int = 0


class Tree:
    """A root filesystem addressed through its fd."""

    def __init__(self, root: str, layer: bool = True) -> None:
        self.layer = layer  # the root becomes a layer: `.wh.` names (whiteouts there) are refused
        self.path = os.path.abspath(root)
        self.fd = os.open(self.path, _DIR)
        self.privileged = os.geteuid() == 0
        self._times: list[tuple[str, int]] = []  # directories whose mtime is set at the end

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> Tree:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- looking -----------------------------------------------------------

    def open(self, path: str, flags: int = _PATH) -> int:
        """An fd of `path`, symlinks followed inside the root (OSError when missing)."""
        rel = clean(path)
        return os.dup(self.fd) if not rel else open_in_root(self.fd, rel, flags)

    def stat(self, path: str) -> os.stat_result | None:
        """stat of `path` (symlinks followed inside the root), None when missing."""
        try:
            fd = self.open(path)
        except OSError as err:
            if err.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                return None
            raise
        try:
            return os.fstat(fd)
        finally:
            os.close(fd)

    def lstat(self, path: str) -> os.stat_result | None:
        """lstat of `path`: its parents resolved inside the root, the last component not followed."""
        rel = clean(path)
        if not rel:
            return os.fstat(self.fd)
        head, _, name = rel.rpartition("/")
        try:
            dfd = self.open(head, _DIR)
        except OSError as err:
            if err.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                return None
            raise
        try:
            return os.lstat(name, dir_fd=dfd)
        except (FileNotFoundError, NotADirectoryError):
            return None
        finally:
            os.close(dfd)

    def is_dir(self, path: str) -> bool:
        found = self.stat(path)
        return found is not None and stat.S_ISDIR(found.st_mode)

    # -- directories ---------------------------------------------------------

    def makedirs(self, path: str, owner: Owner = Owner(), mode: int = 0o755) -> int:
        """An fd of directory `path`, made with its missing parents (owned by `owner`); caller closes."""
        rel = clean(path)
        parts = rel.split("/") if rel else []
        # The deepest existing directory first (a loop, not recursion: an archive may nest thousands deep).
        found = len(parts)
        while True:
            try:
                fd = self.open("/".join(parts[:found]), _DIR)
                break
            except OSError as err:
                if err.errno == errno.ENOTDIR:
                    raise InvalidInput(f"{shown(rel)}: a path component is not a directory") from None
                if err.errno != errno.ENOENT or found == 0:
                    raise
            found -= 1
        for name in parts[found:]:
            try:
                try:
                    os.mkdir(name, mode, dir_fd=fd)
                except FileExistsError:
                    raise InvalidInput(f"{shown(rel)}: cannot make a directory over a dangling symlink") from None
                child = os.open(name, _DIR | os.O_NOFOLLOW, dir_fd=fd)
            finally:
                os.close(fd)
            fd = child
            if self.privileged and (owner.uid, owner.gid) != (0, 0):
                os.fchown(fd, owner.uid, owner.gid)
            os.fchmod(fd, mode)
        return fd

    def parent(self, path: str, owner: Owner = Owner()) -> tuple[int, str]:
        """(fd of the parent directory, made if missing; last component) of a non-root path."""
        rel = clean(path)
        if not rel:
            raise InvalidInput("cannot replace the root directory")
        head, _, name = rel.rpartition("/")
        return self.makedirs(head, owner), name

    # -- entries -------------------------------------------------------------

    def put(self, entry: Entry, path: str, owner: tuple[int, int] | None = None, mode: int | None = None,
            link_target: str | None = None, parents: Owner = Owner()) -> None:
        """Write `entry` at container path `path`: its content and metadata, with the owner
        and permission bits given instead of the entry's when set. A hard link points at the
        container path `link_target`."""
        if self.layer and posixpath.basename(clean(path)).startswith(WHITEOUT_PREFIX):
            raise IntegrityError(f"{shown(path)}: a name starting with {WHITEOUT_PREFIX} is a whiteout in a layer "
                                 "(it would delete a file for whoever unpacks the image)")
        dfd, name = self.parent(path, parents)
        try:
            self._put(dfd, name, clean(path), entry, owner, mode, link_target)
        except OSError as err:
            raise OciError(f"{shown(path)}: {err.strerror}") from None
        finally:
            os.close(dfd)

    def _put(self, dfd: int, name: str, rel: str, entry: Entry, owner: tuple[int, int] | None, mode: int | None,
             link_target: str | None) -> None:
        uid, gid = owner if owner is not None else (entry.uid, entry.gid)
        perm = (mode if mode is not None else entry.mode) & 0o7777
        kind = entry.type
        if kind == tarfile.DIRTYPE:
            try:
                os.mkdir(name, 0o700, dir_fd=dfd)
            except FileExistsError:
                if not stat.S_ISDIR(os.lstat(name, dir_fd=dfd).st_mode):
                    _remove(dfd, name)
                    os.mkdir(name, 0o700, dir_fd=dfd)
            fd = os.open(name, _DIR | os.O_NOFOLLOW, dir_fd=dfd)
            try:
                self._metadata(fd, uid, gid, perm, entry)
            finally:
                os.close(fd)
            self._times.append((rel, entry.mtime))
            return
        self._clear(dfd, name, rel)
        if kind == tarfile.REGTYPE:
            fd = os.open(name, _NEW_FILE, 0o600, dir_fd=dfd)
            try:
                if entry.size:
                    assert entry.opener is not None
                    with entry.opener() as source:
                        _copy(source, fd, entry.size, rel)
                self._metadata(fd, uid, gid, perm, entry)
                os.utime(fd, (entry.mtime, entry.mtime))
            finally:
                os.close(fd)
        elif kind == tarfile.SYMTYPE:
            os.symlink(entry.linkname, name, dir_fd=dfd)
            if self.privileged:
                os.chown(name, uid, gid, dir_fd=dfd, follow_symlinks=False)
            os.utime(name, (entry.mtime, entry.mtime), dir_fd=dfd, follow_symlinks=False)
        elif kind == tarfile.LNKTYPE:
            target = clean(link_target if link_target is not None else entry.linkname)
            tdfd, tname = self.parent(target)
            try:
                os.link(tname, name, src_dir_fd=tdfd, dst_dir_fd=dfd, follow_symlinks=False)
            finally:
                os.close(tdfd)
        elif kind in (tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE):
            if kind == tarfile.FIFOTYPE:
                os.mkfifo(name, 0o600, dir_fd=dfd)
            else:
                if not self.privileged:
                    return
                kind_bits = stat.S_IFCHR if kind == tarfile.CHRTYPE else stat.S_IFBLK
                os.mknod(name, kind_bits | 0o600, os.makedev(entry.devmajor, entry.devminor), dir_fd=dfd)
            if self.privileged:
                os.chown(name, uid, gid, dir_fd=dfd, follow_symlinks=False)
            os.chmod(name, perm, dir_fd=dfd, follow_symlinks=False)
            os.utime(name, (entry.mtime, entry.mtime), dir_fd=dfd, follow_symlinks=False)
        else:
            raise InvalidInput(f"{shown(rel)}: unsupported file type {kind!r}")

    def _clear(self, dfd: int, name: str, rel: str) -> None:
        try:
            found = os.lstat(name, dir_fd=dfd)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(found.st_mode):
            raise InvalidInput(f"{shown(rel)}: cannot replace a directory with a file")
        os.unlink(name, dir_fd=dfd)

    def _metadata(self, fd: int, uid: int, gid: int, perm: int, entry: Entry) -> None:
        if self.privileged:
            os.fchown(fd, uid, gid)
        os.fchmod(fd, perm)
        for key, value in entry.xattrs.items():
            try:
                os.setxattr(fd, key, value)
            except OSError as err:
                if err.errno not in (errno.ENOTSUP, errno.EPERM):
                    raise

    def finish(self) -> None:
        """Set the mtimes of the directories written, deepest first."""
        for rel, mtime in sorted(self._times, key=lambda item: item[0].count("/"), reverse=True):
            try:
                fd = self.open(rel, _DIR)
            except OSError:
                continue
            try:
                os.utime(fd, (mtime, mtime))
            finally:
                os.close(fd)
        self._times.clear()


def _remove(dfd: int, name: str) -> None:
    os.unlink(name, dir_fd=dfd)


def _copy(source: IO[bytes], fd: int, size: int, rel: str) -> None:
    remaining = size
    try:
        source_fd = source.fileno()
    except (AttributeError, OSError, ValueError):
        source_fd = -1
    while remaining and source_fd >= 0:  # a real file: let the kernel copy
        try:
            sent = os.sendfile(fd, source_fd, None, min(remaining, 1 << 30))
        except OSError as err:
            if err.errno in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                break
            raise
        if not sent:
            raise OciError(f"{shown(rel)}: the source ended early (a file shrank while copied)")
        remaining -= sent
    while remaining:
        data = source.read(min(CHUNK, remaining))
        if not data:
            raise OciError(f"{shown(rel)}: the source ended early (a file shrank while copied)")
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        remaining -= len(data)
