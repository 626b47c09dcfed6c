"""Content digests (`sha256:<hex>`, `sha512:<hex>`): parsing, hashing while copying, verifying readers."""

from __future__ import annotations

from collections import namedtuple

from oci.errors import DigestMismatch, IntegrityError, InvalidInput, Unsupported

TYPE_CHECKING = False
if TYPE_CHECKING:  # for type checkers only (typing costs a command's start ~3 ms)
    import hashlib
    from typing import BinaryIO, Protocol

    class Reader(Protocol):
        """A stream of bytes read in blocks: a file, a registry's response, a decompressor, a verifying
        or hashing reader."""

        def read(self, n: int = -1, /) -> bytes: ...

    class IntoReader(Protocol):
        """A stream of bytes that fills a buffer: what blobs are copied from (a file, a response, a
        verifying or resuming reader)."""

        def readinto(self, buffer: memoryview, /) -> int: ...

ALGORITHMS = {"sha256": 64, "sha512": 128}
_GRAMMAR = r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$"  # compiled only for digests we do not support
_HEX = "0123456789abcdef"
CHUNK = 1 << 20
SMALL = 1 << 20  # byte strings up to this size are hashed without loading OpenSSL


class Digest(namedtuple("Digest", ["algorithm", "hex"])):
    """A parsed, validated digest; `str(d)` gives back the canonical `alg:hex` form."""

    __slots__ = ()
    algorithm: str
    hex: str

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse `alg:hex`; refuse malformed text and algorithms other than sha256/sha512."""
        algorithm, colon, encoded = text.partition(":") if isinstance(text, str) else ("", "", "")
        if colon and algorithm in ALGORITHMS:
            if len(encoded) != ALGORITHMS[algorithm] or encoded.strip(_HEX):
                raise InvalidInput(f"invalid {algorithm} digest {text!r}")
            return cls(algorithm, encoded)
        import re

        if not isinstance(text, str) or not re.match(_GRAMMAR, text):
            raise InvalidInput(f"invalid digest {text!r}")
        raise Unsupported(f"unsupported digest algorithm {algorithm!r} in {text!r}")

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        """The digest of a byte string."""
        return cls(algorithm, hash_bytes(data, algorithm))

    def hasher(self) -> hashlib._Hash:
        """A fresh hash object of this digest's algorithm."""
        import hashlib

        return hashlib.new(self.algorithm)

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


def hash_bytes(data: bytes, algorithm: str = "sha256") -> str:
    """The hex digest of a byte string. Small ones (manifests, configs: what a warm pull or
    push hashes) go through CPython's built-in SHA-2 modules, which need no OpenSSL loaded
    (~2 ms of a command's start); large ones through hashlib (OpenSSL, faster per byte)."""
    if len(data) <= SMALL:
        try:
            if algorithm == "sha256":
                from _sha256 import sha256 as new
            elif algorithm == "sha512":
                from _sha512 import sha512 as new
            else:
                new = None
        except ImportError:  # not CPython 3.11 (3.12 merged them into _sha2): hashlib does it
            new = None
        if new is not None:
            return new(data).hexdigest()
    import hashlib

    return hashlib.new(algorithm, data).hexdigest()


def verify_bytes(data: bytes, digest: Digest | str, size: int | None = None, what: str = "content") -> None:
    """Raise IntegrityError unless `data` has the given digest (and size, when given)."""
    digest = Digest.parse(digest) if isinstance(digest, str) else digest
    if size is not None and len(data) != size:
        raise IntegrityError(f"{what}: size {len(data)} does not match expected {size}")
    actual = Digest.of(data, digest.algorithm)
    if actual != digest:
        raise DigestMismatch(f"{what}: digest {actual} does not match expected {digest}")


class VerifyingReader:
    """A file-like reader that hashes what passes through and fails at EOF on a mismatch.

    It also fails as soon as more than `size` bytes arrive, so a hostile source cannot
    make us read without bound.
    """

    def __init__(self, raw: BinaryIO, digest: Digest, size: int | None, what: str = "blob") -> None:
        self._raw = raw
        self._digest = digest
        self._size = size
        self._hash = digest.hasher()
        self._count = 0
        self._what = what
        self.verified = False

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n) if n is not None and n >= 0 else self._raw.read()
        self._count += len(data)
        if self._size is not None and self._count > self._size:
            raise IntegrityError(f"{self._what}: more than the expected {self._size} bytes")
        self._hash.update(data)
        if not data or (n is None or n < 0):
            self._finish()
        return data

    def readinto(self, buffer: memoryview | bytearray) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def _finish(self) -> None:
        if self.verified:
            return
        if self._size is not None and self._count != self._size:
            raise IntegrityError(f"{self._what}: size {self._count} does not match expected {self._size}")
        actual = Digest(self._digest.algorithm, self._hash.hexdigest())
        if actual != self._digest:
            raise DigestMismatch(f"{self._what}: digest {actual} does not match expected {self._digest}")
        self.verified = True

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> VerifyingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def copy_hashing(source: IntoReader, target: BinaryIO, algorithm: str = "sha256",
                 limit: int | None = None) -> tuple[Digest, int]:
    """Copy `source` to `target`, returning the digest and size of what was copied.

    Raises IntegrityError when more than `limit` bytes arrive.
    """
    import hashlib

    hasher = hashlib.new(algorithm)
    count = 0
    buffer = memoryview(bytearray(CHUNK))  # one buffer, filled again and again: no allocation per chunk
    while got := source.readinto(buffer):
        count += got
        if limit is not None and count > limit:
            raise IntegrityError(f"content exceeds the size cap of {limit} bytes")
        chunk = buffer[:got]
        hasher.update(chunk)
        target.write(chunk)
    return Digest(algorithm, hasher.hexdigest()), count

