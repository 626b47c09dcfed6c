"""A layer blob as its uncompressed tar stream, decompressed beside the reader and verified.

The blob is decompressed in another thread or process while the caller parses and writes: a
gzip layer of at most WHOLE_CAP bytes is inflated at once by libdeflate (when the system has
it; several times faster than zlib) in a thread, ahead of the reader; larger ones stream through
`pigz -dc` when installed, else zlib in a thread; zstd streams through zstandard in a thread
(all of these release the GIL). The blob is hashed against its digest and the uncompressed
stream against the config's diff_id as they pass. `LayerStream` offers the forward-only file
API `tarfile` needs, plus `copy_to`, which writes entry data straight from its buffer to a file
descriptor.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import threading
import zlib
from typing import Callable

from oci.descriptor import LAYERS, Descriptor
from oci.digest import Digest
from oci.errors import IntegrityError, NotFound, Unsupported
from oci.unpack import libdeflate

TYPE_CHECKING = False
if TYPE_CHECKING:
    from oci.digest import Reader  # an interface for type checkers only

CHUNK = 1 << 20
MAX_HEADER_READ = 16 << 20  # tarfile reads headers (PAX, GNU long names) whole: cap them
F_SETPIPE_SZ = 1031
WHOLE_CAP = 256 << 20  # gzip layers up to this size (compressed and uncompressed) are inflated whole


def compression_of(descriptor: Descriptor) -> str:
    """"", "gzip" or "zstd" for a layer descriptor; other media types are refused."""
    try:
        return LAYERS[descriptor.media_type]
    except KeyError:
        raise Unsupported(f"layer {descriptor.digest}: unsupported media type {descriptor.media_type}") from None


class _BlobHasher:
    """Reads the blob file, hashing it against its descriptor."""

    def __init__(self, file: Reader, descriptor: Descriptor) -> None:
        self.file, self.descriptor = file, descriptor
        self.hash = descriptor.digest.hasher()
        self.count = 0

    def read(self, n: int = CHUNK) -> bytes:
        data = self.file.read(n if n and n > 0 else CHUNK)
        self.count += len(data)
        self.hash.update(data)
        return data

    def verify(self) -> None:
        d = self.descriptor
        if self.count != d.size:
            raise IntegrityError(f"layer {d.digest}: blob size {self.count} does not match expected {d.size}")
        actual = Digest(d.digest.algorithm, self.hash.hexdigest())
        if actual != d.digest:
            raise IntegrityError(f"layer {d.digest}: blob digest {actual} does not match")


def _pipe() -> tuple[int, int]:
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        fcntl.fcntl(w, F_SETPIPE_SZ, CHUNK)
    except OSError:
        pass  # a smaller pipe only costs speed
    return r, w


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class LayerStream:
    """The uncompressed tar stream of one layer, hashed against `diff_id`, at most `limit` bytes.

    Decompression starts at once, in the background. `use_pigz`: None picks the fastest
    available (libdeflate for a gzip blob within WHOLE_CAP, then pigz, then zlib); True
    streams through pigz (zlib if absent); False through zlib.
    """

    def __init__(self, blob_path: str, descriptor: Descriptor, diff_id: Digest, limit: int,
                 use_pigz: bool | None = None, after: LayerStream | None = None) -> None:
        self.descriptor, self.diff_id, self.limit = descriptor, diff_id, limit
        self.done = threading.Event()  # set when the background work is over
        self._after = after  # start background work only once `after`'s is over: one layer decodes at a time
        self._closed = False
        compression = compression_of(descriptor)
        try:
            self._file = open(blob_path, "rb", buffering=0)
        except FileNotFoundError:
            raise NotFound(f"blob {descriptor.digest} is missing") from None
        self._blob = _BlobHasher(self._file, descriptor)
        self._hash = diff_id.hasher()
        self._count = 0
        self._buf: bytes | bytearray = b""
        self._pos = 0
        self._base = 0  # stream offset of _buf[0]
        self._eof = False
        self._error: BaseException | None = None
        self._proc: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None
        self._fd = -1
        self._whole: bytearray | None = None
        if compression == "":
            self._fd = self._file.fileno()
            self._direct = True
            self.done.set()
            return
        self._direct = False
        pigz = shutil.which("pigz") if use_pigz is not False and compression == "gzip" else None
        if compression == "gzip" and libdeflate.available() and use_pigz is None and \
                descriptor.size <= min(WHOLE_CAP, limit):
            r, w = _pipe()
            self._fd = r
            self._spawn(lambda: self._inflate_whole(w))
        elif pigz:
            r, w = _pipe()
            try:
                self._proc = subprocess.Popen([pigz, "-dc"], stdin=self._file, stdout=w, stderr=subprocess.DEVNULL)
            finally:
                os.close(w)
            self._fd = r
            self._spawn(lambda: self._hash_blob(blob_path))
        else:
            r, w = _pipe()
            self._fd = r
            body = _inflate if compression == "gzip" else _unzstd
            self._spawn(lambda: body(self._blob, w))

    def _spawn(self, body: Callable[[], None]) -> None:
        def target() -> None:
            try:
                while self._after is not None and not self._after.done.wait(0.05):
                    if self._closed:
                        return
                body()
            except BaseException as err:  # reported by finish()
                self._error = err
            finally:
                self.done.set()

        self._thread = threading.Thread(target=target, daemon=True)
        self._thread.start()

    def _hash_blob(self, blob_path: str) -> None:
        """Hash the blob from a file of its own while pigz reads another."""
        with open(blob_path, "rb", buffering=0) as f:
            hasher = _BlobHasher(f, self.descriptor)
            while hasher.read(CHUNK):
                pass
            self._blob = hasher

    def _inflate_whole(self, out: int) -> None:
        """Inflate the blob in one libdeflate call into `self._whole`, hashed, and close `out`.

        Multi-member gzip (or a size field that lies) falls back to streaming zlib into `out`.
        """
        try:
            data = bytearray(self.descriptor.size)
            view = memoryview(data)
            got = 0
            while got < len(data) and (n := self._file.readinto(view[got:])):
                got += n
            self._blob.count = got + len(self._file.read(1))
            self._blob.hash.update(view[:got])
            if self._blob.count != self.descriptor.size:
                return  # verify() reports it
            whole = libdeflate.inflate_once(data, min(WHOLE_CAP, self.limit))
            if whole is None:
                memory = _BlobHasher(_MemoryFile(data), self.descriptor)
                out, pipe = -1, out
                _inflate(memory, pipe)  # closes the pipe
                return
            self._count = len(whole)
            self._whole = whole
            os.close(out)  # the reader may start: it never hashes in this mode, finish() joins us
            out = -1
            self._hash.update(whole)
        finally:
            if out >= 0:
                os.close(out)

    # -- the file API tarfile uses -------------------------------------

    def _fill(self) -> bool:
        """Replace the (consumed) buffer with the next chunk; False at EOF."""
        if self._eof:
            return False
        data = os.read(self._fd, CHUNK)
        if not data:
            self._eof = True
            if self._whole is not None:  # inflated whole (and hashed) by the thread: serve it
                self._base += len(self._buf)
                self._buf, self._pos, self._whole = self._whole, 0, None
                return True
            return False
        self._count += len(data)
        if self._count > self.limit:
            raise IntegrityError(f"layer {self.descriptor.digest}: uncompressed size exceeds the cap of {self.limit}")
        self._hash.update(data)
        if self._direct:
            self._blob.count += len(data)
            if self._blob.hash.name != self._hash.name or self.descriptor.digest != self.diff_id:
                self._blob.hash.update(data)
        self._base += len(self._buf)
        self._buf, self._pos = data, 0
        return True

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0 or n > MAX_HEADER_READ:
            raise IntegrityError(f"layer {self.descriptor.digest}: tar header larger than {MAX_HEADER_READ} bytes")
        end = self._pos + n
        if end <= len(self._buf):
            out = self._buf[self._pos:end]
            self._pos = end
            return out if type(out) is bytes else bytes(out)
        parts = [bytes(self._buf[self._pos:])]
        need = n - len(parts[0])
        self._pos = len(self._buf)
        while need and self._fill():
            take = bytes(self._buf[:need])
            self._pos = len(take)
            parts.append(take)
            need -= len(take)
        return b"".join(parts)

    def tell(self) -> int:
        return self._base + self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence != 0 or offset < self.tell():
            raise IntegrityError(f"layer {self.descriptor.digest}: tar stream cannot seek backwards")
        self.skip(offset - self.tell())
        return self.tell()

    def skip(self, n: int) -> None:
        """Discard `n` bytes (they are still hashed)."""
        while n:
            avail = len(self._buf) - self._pos
            if avail == 0:
                if not self._fill():
                    raise IntegrityError(f"layer {self.descriptor.digest}: unexpected end of tar stream")
                continue
            step = min(avail, n)
            self._pos += step
            n -= step

    def skip_upto(self, offset: int) -> int:
        """Discard bytes up to `offset` or the end of the stream; the offset reached."""
        while self.tell() < offset:
            avail = len(self._buf) - self._pos
            if avail == 0:
                if not self._fill():
                    break
                continue
            self._pos += min(avail, offset - self.tell())
        return self.tell()

    def at_end(self) -> bool:
        """True when no byte follows."""
        return self._pos >= len(self._buf) and not self._fill()

    def copy_to(self, fd: int, n: int, offset: int | None = None) -> None:
        """Write the next `n` bytes of the stream to `fd` (at `offset` with pwrite, when given)."""
        while n:
            avail = len(self._buf) - self._pos
            if avail == 0:
                if not self._fill():
                    raise IntegrityError(f"layer {self.descriptor.digest}: unexpected end of tar stream")
                continue
            step = min(avail, n)
            view = memoryview(self._buf)[self._pos:self._pos + step]
            if offset is None:
                _write_all(fd, view)
            else:
                while view:
                    written = os.pwrite(fd, view, offset)
                    view, offset = view[written:], offset + written
            self._pos += step
            n -= step

    # -- the end ---------------------------------------------------------

    def finish(self) -> None:
        """Read to the end and verify the blob digest and the diff_id."""
        self._pos = len(self._buf)
        while self._fill():
            self._pos = len(self._buf)
        self._join()
        if self._proc is not None and self._proc.returncode != 0:
            raise IntegrityError(f"layer {self.descriptor.digest}: corrupt gzip stream (pigz exited "
                                 f"{self._proc.returncode})")
        if self._error is not None:
            if isinstance(self._error, IntegrityError):
                raise self._error
            raise IntegrityError(f"layer {self.descriptor.digest}: corrupt compressed stream: {self._error}")
        if self._direct and self._blob.hash.name == self._hash.name and self.descriptor.digest == self.diff_id:
            self._blob.hash = self._hash
        self._blob.verify()
        actual = Digest(self.diff_id.algorithm, self._hash.hexdigest())
        if actual != self.diff_id:
            raise IntegrityError(f"layer {self.descriptor.digest}: uncompressed digest {actual} does not match "
                                 f"diff_id {self.diff_id}")
        self.close()

    def _join(self) -> None:
        if self._proc is not None:
            self._proc.wait()
        if self._thread is not None:
            self._thread.join()

    def close(self) -> None:
        """Stop the decompressor and release everything (safe to call twice)."""
        self._closed = True
        if not self._direct and self._fd >= 0:
            os.close(self._fd)  # a blocked writer gets EPIPE and ends
        self._fd = -1
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
        self._join()
        self._file.close()
        self.done.set()

    def __enter__(self) -> LayerStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _inflate(blob: _BlobHasher, out: int) -> None:
    """gzip (possibly several members) from `blob` into pipe `out`."""
    try:
        inflater, fed = zlib.decompressobj(31), False
        while data := blob.read(CHUNK):
            while data:
                fed = True
                _write_all(out, inflater.decompress(data, 4 * CHUNK))
                data = inflater.unconsumed_tail
                if inflater.eof:  # another gzip member may follow
                    data = inflater.unused_data
                    inflater, fed = zlib.decompressobj(31), False
        _write_all(out, inflater.flush())
        if fed and not inflater.eof:
            raise IntegrityError(f"layer {blob.descriptor.digest}: truncated gzip stream")
    finally:
        os.close(out)


def _unzstd(blob: _BlobHasher, out: int) -> None:
    """zstd frames from `blob` into pipe `out`."""
    import zstandard

    try:
        with open(out, "wb", buffering=0, closefd=False) as sink:
            # copy_stream only read()s its source; zstandard's stub asks for a whole IO[bytes]
            zstandard.ZstdDecompressor().copy_stream(blob, sink, read_size=CHUNK, write_size=CHUNK)  # type: ignore[arg-type]
    finally:
        os.close(out)


class _MemoryFile:
    """A read()-able view of a bytearray."""

    def __init__(self, data: bytearray) -> None:
        self._view, self._pos = memoryview(data), 0

    def read(self, n: int = -1) -> bytes:
        end = len(self._view) if n is None or n < 0 else self._pos + n
        out = bytes(self._view[self._pos:end])
        self._pos += len(out)
        return out
