"""Durable file operations: atomic writes (temp, fsync, rename) and advisory locks."""

from __future__ import annotations

import contextlib
import fcntl
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO, Iterator


def fsync_dir(path: str) -> None:
    """Make a rename or unlink inside `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_file(path: str, mode: int = 0o644, tmp_dir: str | None = None) -> Iterator[BinaryIO]:
    """Yield a temporary file that replaces `path` only if the block completes.

    The temporary lives in `tmp_dir` (default: beside `path`, which must be on the same
    filesystem); it is fsynced before the rename and removed on any failure.
    """
    import tempfile  # on use: it pulls shutil, random, bz2 and lzma

    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=tmp_dir or folder, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(folder)


def write_atomic(path: str, data: bytes, mode: int = 0o644) -> None:
    """Replace `path` with `data` atomically and durably."""
    with atomic_file(path, mode) as f:
        f.write(data)


@contextlib.contextmanager
def locked(path: str, shared: bool = False) -> Iterator[None]:
    """Hold an flock on `path` (created if missing) for the duration of the block."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
