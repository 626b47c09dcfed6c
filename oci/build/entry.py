"""One file of a layer and its deterministic tar encoding (POSIX pax).

Determinism: entries come sorted by their source, owner names are never written, mtimes
are whole seconds clamped to an epoch when one is given, owners are forced on request, and
only the pax records that the content needs are written (long or non-ASCII names, large
numbers, xattrs), in a fixed order.
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass, field
from typing import IO, Callable, Iterable, Iterator

from oci.errors import IntegrityError, OciError

BLOCK = 512
END_OF_ARCHIVE = b"\0" * (2 * BLOCK)
XATTR_PAX_PREFIX = "SCHILY.xattr."
WHITEOUT_PREFIX = ".wh."
OPAQUE_WHITEOUT = ".wh..wh..opq"
# xattrs that describe the file rather than the host it sits on; the rest (security.selinux,
# trusted.* such as overlayfs' own, system.* ACL blobs) stay behind.
KEPT_XATTR_PREFIXES = ("user.", "security.capability")
OVERLAY_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")


def keeps_xattr(name: str) -> bool:
    """True for the extended attributes a layer carries (overlayfs' own never)."""
    return name.startswith(KEPT_XATTR_PREFIXES) and not name.startswith(OVERLAY_XATTR_PREFIXES)


def sort_key(name: str) -> tuple[tuple[int, str], ...]:
    """The order of entries in every layer: parents before children, and in each directory
    the opaque marker first, then whiteouts, then the rest, each by name."""
    key = []
    for part in name.split("/"):
        rank = 0 if part == OPAQUE_WHITEOUT else 1 if part.startswith(WHITEOUT_PREFIX) else 2
        key.append((rank, part))
    return tuple(key)


@dataclass
class Entry:
    """A file to put in a layer: `name` is relative, `/`-separated, without a trailing slash."""

    name: str
    type: bytes  # a tarfile type: REGTYPE, DIRTYPE, SYMTYPE, LNKTYPE, CHRTYPE, BLKTYPE, FIFOTYPE
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime: int = 0
    size: int = 0
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    xattrs: dict[str, bytes] = field(default_factory=dict)
    opener: Callable[[], IO[bytes]] | None = None  # the content of a regular file


@dataclass(frozen=True)
class Policy:
    """How entries are normalised: mtimes clamped to `epoch`, owners forced to `owner`."""

    epoch: int | None = None
    owner: tuple[int, int] | None = None


def header(entry: Entry, policy: Policy) -> bytes:
    """The tar header blocks (pax records first when needed) of one entry."""
    info = tarfile.TarInfo(entry.name + "/" if entry.type == tarfile.DIRTYPE else entry.name)
    info.type = entry.type
    info.mode = entry.mode & 0o7777
    info.uid, info.gid = policy.owner if policy.owner else (entry.uid, entry.gid)
    info.uname = info.gname = ""
    mtime = int(entry.mtime)
    info.mtime = min(mtime, policy.epoch) if policy.epoch is not None else mtime
    info.size = entry.size if entry.type == tarfile.REGTYPE else 0
    info.linkname = entry.linkname
    info.devmajor, info.devminor = entry.devmajor, entry.devminor
    info.pax_headers = {XATTR_PAX_PREFIX + key: value.decode("utf-8", "surrogateescape")
                        for key, value in sorted(entry.xattrs.items())}
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def tar_stream(entries: Iterable[Entry], policy: Policy, chunk: int = 1 << 20) -> Iterator[bytes]:
    """The layer tarball of `entries`, in chunks of about `chunk` bytes."""
    buffer = bytearray()
    for entry in entries:
        buffer += header(entry, policy)
        if entry.type == tarfile.REGTYPE and entry.size:
            if entry.opener is None:
                raise OciError(f"{entry.name}: a regular file without its content")
            try:
                with entry.opener() as source:
                    remaining = entry.size
                    while remaining:
                        data = source.read(min(remaining, chunk))
                        if not data:
                            raise OciError(f"{entry.name}: content ended early (file shrank while read)")
                        remaining -= len(data)
                        buffer += data
                        if len(buffer) >= chunk:
                            yield bytes(buffer)
                            buffer.clear()
            except tarfile.TarError as err:
                raise IntegrityError(f"tar entry {entry.name!r}: {err}") from None
            except OSError as err:
                raise OciError(f"{entry.name}: cannot read: {err}") from None
            buffer += b"\0" * (-entry.size % BLOCK)
        if len(buffer) >= chunk:
            yield bytes(buffer)
            buffer.clear()
    buffer += END_OF_ARCHIVE
    yield bytes(buffer)
