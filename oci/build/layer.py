"""A layer blob written into a layout: tar, compressed, hashed twice in one pass.

The tar stream is hashed as it is made (the diff_id), compressed, and handed to
`Layout.put_blob`, which hashes the compressed bytes (the blob digest) while writing them
to a temporary it renames into place: nothing is written twice, nothing appears half-done.
Compression is deterministic (`compress.py`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Iterable, Iterator

from oci.build.compress import compressor as make_compressor
from oci.build.entry import Entry, Policy, tar_stream
from oci.descriptor import OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD, Descriptor
from oci.digest import Digest
from oci.errors import InvalidInput
from oci.layout import Layout

MEDIA_TYPES = {"gzip": OCI_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD, "none": OCI_LAYER}


@dataclass(frozen=True)
class Layer:
    """A layer stored in a layout: its descriptor and the digest of its uncompressed tar."""

    descriptor: Descriptor
    diff_id: Digest


def write_layer(layout: Layout, entries: Iterable[Entry], policy: Policy, compression: str = "gzip") -> Layer:
    """Store the layer made of `entries` in `layout`."""
    if compression not in MEDIA_TYPES:
        raise InvalidInput(f"unknown compression {compression!r}: expected one of {', '.join(MEDIA_TYPES)}")
    tar_hash = hashlib.sha256()

    def compressed() -> Iterator[bytes]:
        compressor = make_compressor(compression)
        for chunk in tar_stream(entries, policy):
            tar_hash.update(chunk)
            if data := compressor.compress(chunk):
                yield data
        yield compressor.flush()

    digest, size = layout.put_blob(ChunkReader(compressed()))
    return Layer(Descriptor(MEDIA_TYPES[compression], digest, size), Digest("sha256", tar_hash.hexdigest()))


class ChunkReader:
    """A readable file over an iterator of byte chunks (pulls the next chunk on demand)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = bytearray()
        self._done = False

    def read(self, n: int = -1) -> bytes:
        while not self._done and (n < 0 or len(self._buffer) < n):
            try:
                self._buffer += next(self._chunks)
            except StopIteration:
                self._done = True
        if n < 0 or n >= len(self._buffer):
            data = bytes(self._buffer)
            self._buffer.clear()
            return data
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    def readinto(self, buffer: memoryview | bytearray) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
