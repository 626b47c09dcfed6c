"""Durable file operations: atomic writes (temp, fsync, rename) and advisory locks.

The context managers are small classes rather than contextlib generators: contextlib's
import costs every command's start ~0.5 ms, and a warm oci-fetch needs only the locks.
"""

from __future__ import annotations

import fcntl
import os

TMP_PREFIX = ".tmp-"  # the name of every temporary atomic_file makes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

# False while a caller writes files nothing needs after a crash (the bundle and record of an
# `ocikit run --rm` container): writes stay atomic (temporary, rename) but skip the fsyncs,
# ~4 ms each on a virtual disk. Set only through `relaxed()`.
_durable = [True]


class relaxed:  # noqa: N801  (used like a function: `with relaxed():`)
    """Atomic but not durable writes for the duration of the block (this thread's callers)."""

    def __enter__(self) -> None:
        _durable.append(False)

    def __exit__(self, *exc: object) -> None:
        _durable.pop()


def fsync_dir(path: str) -> None:
    """Make a rename or unlink inside `path` durable."""
    if not _durable[-1]:
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class atomic_file:  # noqa: N801  (used like a function: `with atomic_file(path) as f:`)
    """A temporary file that replaces `path` only if the block completes.

    The temporary lives in `tmp_dir` (default: beside `path`, which must be on the same
    filesystem); it is fsynced before the rename and removed on any failure.
    """

    def __init__(self, path: str, mode: int = 0o644, tmp_dir: str | None = None) -> None:
        self.path, self.mode = path, mode
        self.folder = os.path.dirname(os.path.abspath(path))
        self.tmp_dir = tmp_dir or self.folder

    def __enter__(self) -> BinaryIO:
        # mkstemp's guarantees (a new, private file) without importing tempfile (~4 ms)
        self.tmp = os.path.join(self.tmp_dir, f"{TMP_PREFIX}{os.getpid()}-{os.urandom(6).hex()}")
        fd = os.open(self.tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        self.file = os.fdopen(fd, "wb")
        return self.file

    def __exit__(self, kind: object, error: object, traceback: object) -> None:
        try:
            if kind is None:
                self.file.flush()
                os.fchmod(self.file.fileno(), self.mode)
                if _durable[-1]:
                    os.fsync(self.file.fileno())
            self.file.close()
            if kind is None:
                os.rename(self.tmp, self.path)
        except BaseException:
            self._discard()
            raise
        if kind is not None:
            self._discard()
            return
        fsync_dir(self.folder)

    def _discard(self) -> None:
        try:
            self.file.close()  # flushes what is buffered: fails again on a full disk
        except OSError:
            pass
        try:
            os.unlink(self.tmp)
        except FileNotFoundError:
            pass


def write_atomic(path: str, data: bytes, mode: int = 0o644) -> None:
    """Replace `path` with `data` atomically and durably."""
    with atomic_file(path, mode) as f:
        f.write(data)


class locked:  # noqa: N801  (used like a function: `with locked(path):`)
    """Hold an flock on `path` (created if missing) for the duration of the block."""

    def __init__(self, path: str, shared: bool = False) -> None:
        self.path, self.shared = path, shared

    def __enter__(self) -> None:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX)
        except BaseException:
            os.close(self.fd)
            raise

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)
