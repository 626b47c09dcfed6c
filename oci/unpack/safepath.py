"""Paths inside a root directory, resolved through its fd so that nothing escapes it.

Every path handed to `Root` is a tar entry name: it is cleaned (no absolute paths, no `..`,
components of at most 255 bytes) and its parent directory is opened beneath the root with
openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS) through oci.linux.kernel
(oci.linux.inroot is the home of paths inside a root; these are its tar-entry rules), or, where openat2 is
missing, by a walk of `openat(O_NOFOLLOW)` calls one component at a time. The final component
is then created, opened, linked or removed relative to that parent fd, never by a path string.
A symlink anywhere in a parent path is refused: tar files made from real trees never need one.
"""

from __future__ import annotations

import errno
import os
import shutil
from typing import Callable

from oci.errors import IntegrityError
from oci.linux.inroot import has_openat2
from oci.linux.kernel import RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS, kernel

_RESOLVE = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
NAME_MAX = 255
PATH_MAX = 4096
_FD_CACHE = 256  # parent directory fds kept open


class UnsafePath(IntegrityError):
    """A tar entry whose path would leave the root or pass through a symlink."""


def clean(name: str) -> str:
    """The entry name as a relative path without `.` components ("" for the root itself).

    Raises UnsafePath for absolute names, `..` components, NUL bytes and over-long names.
    """
    if name.startswith("/"):
        raise UnsafePath("absolute path")
    if "\0" in name:
        raise UnsafePath("NUL byte in path")
    parts = name.split("/")
    if "" in parts or "." in parts:
        parts = [p for p in parts if p and p != "."]
        name = "/".join(parts)
    if ".." in parts:
        raise UnsafePath("'..' in path")
    if len(name) * 4 > NAME_MAX:  # a character takes at most 4 bytes: only long names need counting
        for part in parts:
            if len(os.fsencode(part)) > NAME_MAX:
                raise UnsafePath("path component longer than 255 bytes")
        if len(os.fsencode(name)) >= PATH_MAX:
            raise UnsafePath("path longer than 4095 bytes")
    return name


class Root:
    """A directory tree that entries are written into, addressed only through its fd."""

    def __init__(self, path: str, *, use_openat2: bool | None = None) -> None:
        self.path = os.path.abspath(path)
        self.fd = os.open(self.path, _DIR_FLAGS)
        self._openat2 = has_openat2() if use_openat2 is None else use_openat2
        self._dirs: dict[str, int] = {}
        # Where a missing parent directory takes its owner and mode from (None: root, 0755).
        self.like: Callable[[str], os.stat_result | None] = lambda path: None

    def close(self) -> None:
        """Close the root fd and every cached directory fd."""
        self.forget()
        os.close(self.fd)

    def __enter__(self) -> Root:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def forget(self, path: str | None = None) -> None:
        """Drop cached directory fds (all, or those at and under `path`)."""
        if path is None:
            doomed = list(self._dirs)
        else:
            prefix = path + "/"
            doomed = [p for p in self._dirs if p == path or p.startswith(prefix)]
        for p in doomed:
            os.close(self._dirs.pop(p))

    def dir_fd(self, path: str, create: bool = True) -> int:
        """An fd of directory `path` (clean, relative; "" is the root), made with its parents if missing.

        The fd is cached and owned by the Root: do not close it.
        """
        if not path:
            return self.fd
        fd = self._dirs.get(path)
        if fd is not None:
            return fd
        fd = self._open_dir(path, create)
        if len(self._dirs) >= _FD_CACHE:
            self.forget()
        self._dirs[path] = fd
        return fd

    def parent(self, path: str, create: bool = True) -> tuple[int, str]:
        """(fd of the parent directory, last component) for a clean non-empty path."""
        head, _, name = path.rpartition("/")
        return self.dir_fd(head, create), name

    def _open_dir(self, path: str, create: bool) -> int:
        if self._openat2:
            try:
                return kernel().openat2(self.fd, path, _DIR_FLAGS, _RESOLVE)
            except OSError as err:
                if err.errno in (errno.ELOOP, errno.EXDEV):
                    raise UnsafePath("a parent directory is a symlink") from None
                if err.errno == errno.ENOTDIR:
                    raise UnsafePath("a parent path component is not a directory") from None
                if err.errno != errno.ENOENT or not create:
                    raise
        return self._walk(path, create)

    def _walk(self, path: str, create: bool) -> int:
        """Open `path` one component at a time, never following a symlink, making missing dirs."""
        fd = os.dup(self.fd)
        done = ""
        try:
            for part in path.split("/"):
                done = f"{done}/{part}" if done else part
                try:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    os.mkdir(part, 0o755, dir_fd=fd)
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                    self._shape(child, done)
                except OSError as err:
                    if err.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise UnsafePath("a parent directory is a symlink or not a directory") from None
                    raise
                os.close(fd)
                fd = child
            return fd
        except BaseException:
            os.close(fd)
            raise

    def _shape(self, fd: int, path: str) -> None:
        """Give a directory made implicitly the owner and mode of its model (see `like`)."""
        model = self.like(path)
        if model is not None and _is_dir(model.st_mode):
            if os.geteuid() == 0:
                os.fchown(fd, model.st_uid, model.st_gid)
            os.fchmod(fd, model.st_mode & 0o7777)
        else:
            os.fchmod(fd, 0o755)

    def lstat(self, path: str) -> os.stat_result | None:
        """lstat of a clean path, or None if it does not exist."""
        if not path:
            return os.fstat(self.fd)
        try:
            dfd, name = self.parent(path, create=False)
            return os.lstat(name, dir_fd=dfd)
        except FileNotFoundError:
            return None

    def remove(self, path: str) -> None:
        """Remove whatever is at `path` (a whole tree for a directory); missing is fine."""
        head, _, name = path.rpartition("/")
        try:
            dfd = self.dir_fd(head, create=False)
        except FileNotFoundError:
            return
        self.remove_at(dfd, name, path)

    def remove_at(self, dfd: int, name: str, path: str) -> None:
        """Remove `name` in directory `dfd` (its clean path is `path`, for the fd cache)."""
        try:
            os.unlink(name, dir_fd=dfd)
        except FileNotFoundError:
            return
        except IsADirectoryError:
            self.forget(path)
            shutil.rmtree(name, dir_fd=dfd)
        except PermissionError:  # EPERM from unlink(2) on a directory
            st = os.lstat(name, dir_fd=dfd)
            if not _is_dir(st.st_mode):
                raise
            self.forget(path)
            shutil.rmtree(name, dir_fd=dfd)


def _is_dir(mode: int) -> bool:
    return (mode & 0o170000) == 0o040000


def proc_path(dfd: int, name: str) -> str:
    """A path naming `name` in directory fd `dfd` without re-resolving the directory."""
    return f"/proc/self/fd/{dfd}/{name}"

