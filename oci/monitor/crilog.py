"""Container logs in the CRI format (the kubelet's, containerd's, podman's k8s-file):

    2024-05-01T12:00:00.123456789Z stdout F a whole line
    2024-05-01T12:00:00.123456790Z stderr P the first part of a line that goes on
    2024-05-01T12:00:00.223456789Z stderr F in the next record

One record per line of output, `F` when it ends the line, `P` for a part: output that
arrived without its newline yet (written at once, as conmon does, so nothing waits in the
monitor), or a piece of a line longer than MAX_LINE. Readers join P records to the next F
record of the same stream.

`LogWriter` rotates by size (PATH -> PATH.1 -> ... PATH.{max_files-1}; with one file, the
full file is removed) and never blocks or fails its caller: a record that cannot be written
(full disk, quota, I/O error) is dropped and counted, and a half-written one is cut off
again, so the file stays a sequence of whole records.
"""

from __future__ import annotations

import errno
import os

from oci.monitor import times

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable, Iterator

MAX_LINE = 16 * 1024  # the kubelet's and containerd's split size
STREAMS = ("stdout", "stderr")



class Record:
    """One CRI record: its time as written, its stream, whether the line goes on, its content (no newline)."""

    __slots__ = ("time", "stream", "partial", "content")

    def __init__(self, time: str, stream: str, partial: bool, content: bytes) -> None:
        self.time, self.stream, self.partial, self.content = time, stream, partial, content

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Record) and (self.time, self.stream, self.partial, self.content) == (
            other.time, other.stream, other.partial, other.content)

    def __repr__(self) -> str:
        return f"Record({self.time!r}, {self.stream!r}, {self.partial!r}, {self.content!r})"


def encode(stream: str, data: bytes, stamp: str) -> tuple[bytes, int]:
    """`data` read from `stream` as CRI records, and how many records that is."""
    prefix_full = f"{stamp} {stream} F ".encode()
    prefix_part = f"{stamp} {stream} P ".encode()
    out = []
    count = 0
    start = 0
    end = len(data)
    while start < end:
        newline = data.find(b"\n", start, min(end, start + MAX_LINE + 1))
        if newline >= 0:
            out.append(prefix_full + data[start:newline] + b"\n")
            start = newline + 1
        else:
            stop = min(end, start + MAX_LINE)
            out.append(prefix_part + data[start:stop] + b"\n")
            start = stop
        count += 1
    return b"".join(out), count


class LogWriter:
    """Appends CRI records to PATH, rotating by size; failures drop records and are counted."""

    def __init__(self, path: str, max_size: int = 0, max_files: int = 1) -> None:
        self.path, self.max_size, self.max_files = path, max_size, max(1, max_files)
        self.dropped = 0  # records dropped since this writer opened
        self.episode = 0  # records dropped since the last successful write
        self.failure = ""  # the error of the episode
        self.fd = -1
        self.size = 0
        self._open()

    def _open(self) -> None:
        try:
            self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
            self.size = os.fstat(self.fd).st_size
        except OSError as err:
            self.fd = -1
            self.failure = err.strerror or str(err)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def write(self, stream: str, data: bytes, stamp: str | None = None) -> int:
        """Log `data` read from `stream`; the number of records dropped by this call (0 when all were written)."""
        if not data:
            return 0
        blob, count = encode(stream, data, stamp or times.now())
        if not self.max_size:
            return self._append(blob, count)
        dropped = 0
        start = 0
        while start < len(blob):  # as many whole records as fit, then rotate
            room = self.max_size - self.size
            end = blob.rfind(b"\n", start, start + max(room, 0)) + 1
            if end <= start:  # not even one record fits
                if self.size:
                    self.rotate()
                    continue
                end = blob.index(b"\n", start) + 1  # a record longer than max_size has a file of its own
            dropped += self._append(blob[start:end], blob.count(b"\n", start, end))
            start = end
        return dropped

    def _append(self, blob: bytes, count: int) -> int:
        if self.fd < 0:
            self._open()
            if self.fd < 0:
                return self._drop(count, self.failure or "log file not open")
        try:
            written = os.write(self.fd, blob)
        except OSError as err:
            return self._drop(count, err.strerror or errno.errorcode.get(err.errno or 0, str(err)))
        if written < len(blob):  # the disk filled up inside the record: cut it off again
            try:
                os.ftruncate(self.fd, self.size)
            except OSError:
                pass
            return self._drop(count, os.strerror(errno.ENOSPC))
        self.size += written
        self.episode = 0
        return 0

    def _drop(self, count: int, reason: str) -> int:
        self.dropped += count
        self.episode += count
        self.failure = reason
        return count

    def rotate(self) -> None:
        """PATH -> PATH.1 -> ... -> PATH.{max_files-1}, the oldest dropped; a new PATH."""
        self.close()
        try:
            if self.max_files == 1:
                os.unlink(self.path)
            else:
                for k in range(self.max_files - 1, 1, -1):
                    try:
                        os.rename(f"{self.path}.{k - 1}", f"{self.path}.{k}")
                    except FileNotFoundError:
                        pass
                os.rename(self.path, f"{self.path}.1")
        except OSError:
            pass
        self._open()


def parse(line: bytes) -> Record | None:
    """One CRI record; None for a line that is not one (a damaged or foreign line is skipped)."""
    try:
        stamp, stream, tags, rest = line.split(b" ", 3)
    except ValueError:
        parts = line.rstrip(b"\n").split(b" ")
        if len(parts) != 3:  # an empty F record has no content field at all
            return None
        stamp, stream, tags, rest = *parts, b""
    if stream not in (b"stdout", b"stderr") or not tags:
        return None
    content = rest[:-1] if rest.endswith(b"\n") else rest
    return Record(stamp.decode("ascii", "replace"), stream.decode(), tags.split(b":")[0] == b"P", content)


def records(lines: Iterable[bytes]) -> Iterator[Record]:
    for line in lines:
        record = parse(line)
        if record is not None:
            yield record


def time_ns(record: Record) -> int:
    try:
        return times.parse_rfc3339(record.time)
    except ValueError:
        return 0


def select(found: Iterable[Record], since: int | None = None, until: int | None = None,
           tail: int | None = None) -> list[Record]:
    """The records, in their order, of the whole lines that began at `since` or later and before `until`;
    of those, the last `tail` lines (by when they began)."""
    kept: list[tuple[int, Record]] = []
    line_of: dict[str, int | None] = {}  # stream -> the line a partial record left open (None: left out)
    lines = 0
    for record in found:
        if record.stream in line_of:
            line = line_of[record.stream]
        else:
            stamp = time_ns(record) if since is not None or until is not None else 0
            line = None if (since is not None and stamp < since) or (until is not None and stamp >= until) else lines
            lines += 1
        if line is not None:
            kept.append((line, record))
            if tail is not None and len(kept) > 2 * tail + 1024:  # a long log: only its end can be shown
                kept = [(n, r) for n, r in kept if n >= lines - tail]
        if record.partial:
            line_of[record.stream] = line
        else:
            line_of.pop(record.stream, None)
    if tail is not None:
        first = sorted({line for line, _ in kept})[-tail:] if tail > 0 else []
        wanted = set(first)
        return [record for line, record in kept if line in wanted]
    return [record for _, record in kept]


class Printer:
    """Writes records as `logs` shows them: stdout records to one file, stderr to the other, lines joined."""

    def __init__(self, out: int, err: int, timestamps: bool = False) -> None:
        self.fds = {"stdout": out, "stderr": err}
        self.timestamps = timestamps
        self.line_start = {"stdout": True, "stderr": True}

    def show(self, record: Record) -> None:
        data = record.content if record.partial else record.content + b"\n"
        if self.timestamps and self.line_start[record.stream]:
            data = record.time.encode() + b" " + data
        self.line_start[record.stream] = not record.partial
        fd = self.fds[record.stream]
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
