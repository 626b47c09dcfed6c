"""Deterministic layer compressors with one interface: `compress(data) -> bytes`, `flush() -> bytes`.

gzip is made like pigz does: the input is cut into fixed blocks, each deflated on its own
thread (zlib releases the GIL) with the previous block's last 32 KiB as its dictionary,
and the pieces are joined into one gzip member (no file name, mtime 0, one CRC). The
output depends only on the input, the level and the block size, never on the number of
threads. zstd is single-threaded at a fixed level.
"""

from __future__ import annotations

import collections
import os
import struct
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

GZIP_LEVEL = 4  # beside umoci's output size, at a fraction of level 6's time
ZSTD_LEVEL = 3
BLOCK = 1 << 20
WINDOW = 32 << 10
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03"  # deflate, no flags, mtime 0, Unix


class Identity:
    """No compression."""

    def compress(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


class ParallelGzip:
    """A gzip stream deflated block by block on a thread pool, output in order."""

    def __init__(self, level: int = GZIP_LEVEL, block: int = BLOCK, workers: int | None = None) -> None:
        self._level, self._block = level, block
        self._workers = workers or min(os.cpu_count() or 1, 8)
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="gzip")
        self._pending: collections.deque[Future[bytes]] = collections.deque()
        self._buffer = bytearray()
        self._dictionary = b""
        self._crc = 0
        self._size = 0
        self._started = False

    def compress(self, data: bytes) -> bytes:
        self._buffer += data
        while len(self._buffer) >= self._block:
            block = bytes(self._buffer[: self._block])
            del self._buffer[: self._block]
            self._submit(block, last=False)
        return self._collect(keep=2 * self._workers)

    def flush(self) -> bytes:
        self._submit(bytes(self._buffer), last=True)
        self._buffer.clear()
        out = self._collect(keep=0)
        self._pool.shutdown()
        return out + struct.pack("<II", self._crc, self._size & 0xFFFFFFFF)

    def _submit(self, block: bytes, last: bool) -> None:
        self._crc = zlib.crc32(block, self._crc)
        self._size += len(block)
        self._pending.append(self._pool.submit(_deflate, block, self._dictionary, self._level, last))
        self._dictionary = block[-WINDOW:]

    def _collect(self, keep: int) -> bytes:
        """The finished blocks at the head of the queue, waiting while more than `keep` are pending."""
        pieces = [b"" if self._started else GZIP_HEADER]
        self._started = True
        while self._pending and (len(self._pending) > keep or self._pending[0].done()):
            pieces.append(self._pending.popleft().result())
        return b"".join(pieces)


def _deflate(block: bytes, dictionary: bytes, level: int, last: bool) -> bytes:
    options: dict[str, Any] = {"zdict": dictionary} if dictionary else {}
    deflater = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS, 8, zlib.Z_DEFAULT_STRATEGY, **options)
    return deflater.compress(block) + deflater.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)


def compressor(compression: str) -> Any:
    """A fresh compressor for `gzip`, `zstd` or `none`."""
    if compression == "gzip":
        return ParallelGzip()
    if compression == "zstd":
        import zstandard  # a third-party package: only for zstd layers

        return zstandard.ZstdCompressor(level=ZSTD_LEVEL).compressobj()
    return Identity()
