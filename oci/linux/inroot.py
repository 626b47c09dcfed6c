"""A path resolved inside a root directory, never leading out of it: the one home of that rule for the
runtime's mount targets, the bundle's reads of an image's /etc files and the unpacker's tar entries
(oci.unpack.safepath adds the tar-specific rules on top of `openat2`).

Two ways, for two needs:

* `open_in_root` lets the kernel resolve: openat2(2) with RESOLVE_IN_ROOT, every component looked
  up as if the root were `/`, so an absolute symlink such as `/etc/passwd -> /host/etc/passwd`
  stays inside. For reading what exists.
* `resolve_in_root` and `open_target` resolve in user space, one component at a time (as runc's
  securejoin does), because a mount target may not exist yet and is made on the way; the fd then
  opened (O_PATH, O_NOFOLLOW) is checked through /proc/self/fd to be inside the root, so a path
  swapped under our feet cannot redirect a mount to the host.
"""

from __future__ import annotations

import errno
import os
import stat

from oci.errors import NotFound, OciError, Unsupported
from oci.linux.kernel import RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, kernel

MAX_READ = 16 << 20
MAX_SYMLINKS = 40  # as the kernel's path walk
_openat2_works: bool | None = None


class OutsideRoot(OciError):
    """A path that leads out of its root, or through too many symbolic links."""


def has_openat2() -> bool:
    """Whether the kernel offers openat2 (probed once per process)."""
    global _openat2_works
    if _openat2_works is None:
        try:
            os.close(kernel().openat2(-100, "/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, 0))  # AT_FDCWD
            _openat2_works = True
        except OSError:
            _openat2_works = False
    return _openat2_works


def open_in_root(root: str, path: str, flags: int = os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY) -> int:
    """An fd for `path` resolved by the kernel inside `root` (magic links refused); NotFound when it does
    not exist, Unsupported on a kernel without openat2."""
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return kernel().openat2(root_fd, path.lstrip("/") or ".", flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
    except OSError as err:
        full = os.path.join(root, path.lstrip("/"))
        if err.errno == errno.ENOENT:
            raise NotFound(f"{full}: no such file") from None
        if err.errno == errno.ENOSYS:
            raise Unsupported("the kernel lacks openat2(2), needed to read files inside a rootfs safely") from None
        raise OSError(err.errno, os.strerror(err.errno or 0), full) from None
    finally:
        os.close(root_fd)


def read_in_root(root: str, path: str, limit: int = MAX_READ) -> bytes | None:
    """At most `limit` bytes of the regular file `path` inside `root`, or None when it is missing or not a
    regular file."""
    try:
        fd = open_in_root(root, path)
    except NotFound:
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return None
        return f.read(limit)


def resolve_in_root(root: str, path: str) -> str:
    """`path` inside `root` with symlinks followed as if `root` were `/`; never leaves `root`. Missing
    components are kept as named."""
    parts = [p for p in path.split("/") if p and p != "."]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            resolved.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            hops += 1
            if hops > MAX_SYMLINKS:
                raise OutsideRoot(f"{path}: too many levels of symbolic links")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p and p != "."] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved) if resolved else root


def inside(root: str, fd: int) -> bool:
    """Whether the file open at `fd` is `root` or beneath it."""
    real = os.readlink(f"/proc/self/fd/{fd}")
    return real == root or real.startswith(root.rstrip("/") + "/")


def open_resolved(root: str, path: str, flags: int) -> int:
    """os.open of `path` resolved inside `root` (an existing file: a target just mounted on), checked to be
    inside."""
    fd = os.open(resolve_in_root(root, path), flags | os.O_CLOEXEC)
    if not inside(root, fd):
        os.close(fd)
        raise OutsideRoot(f"mount target {path} resolves outside the rootfs")
    return fd


def make_dirs(root: str, path: str) -> None:
    """Make the directories of `path` (relative to `root`) that are missing, each resolved inside `root`."""
    current = ""
    for part in [p for p in path.split("/") if p and p != "."]:
        current = os.path.relpath(resolve_in_root(root, os.path.join(current, part)), root)
        full = os.path.join(root, current)
        if not os.path.isdir(full):
            os.mkdir(full, 0o755)


def open_target(root: str, path: str, directory: bool) -> int:
    """Create `path` inside `root` when missing (a directory or an empty file) and open it O_PATH, checked
    to be inside."""
    full = resolve_in_root(root, path)
    parent = os.path.dirname(full) if full != root else root
    if not os.path.lexists(full):
        make_dirs(root, os.path.relpath(parent, root))
        parent = resolve_in_root(root, os.path.relpath(parent, root))
        full = os.path.join(parent, os.path.basename(full))
        if directory:
            os.mkdir(full, 0o755)
        else:
            os.close(os.open(full, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644))
    fd = os.open(full, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    if not inside(root, fd):
        os.close(fd)
        raise OutsideRoot(f"mount target {path} resolves outside the rootfs")
    return fd
