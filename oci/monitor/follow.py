"""Reading a file that its writer rotates by renaming: PATH, then PATH.1 (newest backup) ... PATH.N.

Both the container logs and the event log are rotated this way. A reader holds the file it
reads open, so a rename (or even the removal of the oldest backup) never takes lines from
under it; when PATH names another file than the one it holds, it reads what is left of its
own, then every backup newer than it, then the new PATH from its start. Nothing written is
skipped unless the writer rotated past a file before the reader opened it.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterator

CHUNK = 1 << 16


def backups(path: str) -> list[str]:
    """The existing backups of `path`, oldest first (PATH.N ... PATH.1)."""
    folder, base = os.path.split(path)
    numbers = []
    try:
        names = os.listdir(folder or ".")
    except FileNotFoundError:
        return []
    for name in names:
        head, dot, number = name.rpartition(".")
        if dot and head == base and number.isdigit():
            numbers.append(int(number))
    return [f"{path}.{n}" for n in sorted(numbers, reverse=True)]


class RotatedFile:
    """The lines of a rotated file set, from its oldest backup on, then as they are written."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = -1
        self.fragment = b""

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _open(self, path: str) -> int:
        try:
            return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return -1

    def _drain(self, fd: int) -> Iterator[bytes]:
        """The complete lines readable from fd now (a partial last line waits in self.fragment)."""
        while True:
            chunk = os.read(fd, CHUNK)
            if not chunk:
                return
            chunk = self.fragment + chunk
            cut = chunk.rfind(b"\n") + 1
            self.fragment = chunk[cut:]
            if cut:
                yield from chunk[:cut].splitlines(keepends=True)

    def _flush_fragment(self) -> Iterator[bytes]:
        if self.fragment:
            fragment, self.fragment = self.fragment, b""
            yield fragment

    def history(self) -> Iterator[bytes]:
        """Every line written so far, oldest first; the current file stays open for `poll`."""
        self.fd = self._open(self.path)
        current = os.fstat(self.fd).st_ino if self.fd >= 0 else None
        for backup in backups(self.path):
            fd = self._open(backup)
            if fd < 0:
                continue
            try:
                if os.fstat(fd).st_ino == current:
                    continue
                yield from self._drain(fd)
                yield from self._flush_fragment()
            finally:
                os.close(fd)
        if self.fd >= 0:
            yield from self._drain(self.fd)

    def skip_history(self) -> None:
        """Start `poll` at the current end of the file set."""
        self.fd = self._open(self.path)
        if self.fd >= 0:
            os.lseek(self.fd, 0, os.SEEK_END)

    def poll(self) -> Iterator[bytes]:
        """The lines written since the last call, following rotations."""
        if self.fd < 0:
            self.fd = self._open(self.path)
            if self.fd < 0:
                return
        yield from self._drain(self.fd)
        try:
            now = os.stat(self.path).st_ino
        except FileNotFoundError:
            return  # between a rename and the new file: look again next time
        mine = os.fstat(self.fd).st_ino
        if now == mine:
            return
        yield from self._drain(self.fd)  # what the writer added before it renamed the file away
        yield from self._flush_fragment()
        newer = []
        for backup in reversed(backups(self.path)):  # newest first, until the file we held
            fd = self._open(backup)
            if fd < 0:
                continue
            if os.fstat(fd).st_ino == mine:
                os.close(fd)
                break
            newer.append(fd)
        for fd in reversed(newer):
            try:
                yield from self._drain(fd)
                yield from self._flush_fragment()
            finally:
                os.close(fd)
        os.close(self.fd)
        self.fd = self._open(self.path)
        if self.fd >= 0:
            yield from self._drain(self.fd)
