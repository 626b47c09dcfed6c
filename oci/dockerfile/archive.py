"""ADD's local archives: a tar (plain, gzip, bzip2, xz or zstd) unpacked into the stage's
root, entry by entry in archive order, as Docker's `archive.Untar` does it.

* Which files are archives: those that decompress (or not) to a valid tar header, as
  Docker's `IsArchivePath` decides; a gzip of a plain file is copied as it is.
* Names are cleaned; a leading `/` is dropped (the name is relative to the destination);
  a name or hard-link target that climbs out of the destination (`../x`) is refused, as
  Docker refuses it ("breakout"). Paths are then resolved inside the root (`tree`): a
  symlink the archive made earlier (`evil -> /etc`, then `evil/passwd`) leads to the
  root's own /etc, never the host's.
* A hard link must name an entry already unpacked; device nodes and FIFOs are made (the
  build runs as root, as Docker's does); owners, modes, times and user xattrs come from the
  archive; later entries replace earlier ones of the same name.
* Caps (`Budget`, oci-build's `--max-size` and `--max-entries`): uncompressed bytes and
  entries per archive, a member's declared size checked before any byte is written, and
  pax or GNU long-name headers at most `MAX_HEADER` (Python's tarfile would read any size
  into memory).
"""

from __future__ import annotations

import io
import posixpath
import tarfile
from typing import BinaryIO, Callable

from oci.build.entry import Entry, keeps_xattr
from oci.dockerfile.tree import Owner, Tree
from oci.errors import IntegrityError, InvalidInput, OciError, Unsupported
from oci.unpack.options import Budget

MAX_HEADER = 1 << 20
MAGIC = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstd"}
_TYPES = {tarfile.DIRTYPE: tarfile.DIRTYPE, tarfile.SYMTYPE: tarfile.SYMTYPE, tarfile.LNKTYPE: tarfile.LNKTYPE,
          tarfile.CHRTYPE: tarfile.CHRTYPE, tarfile.BLKTYPE: tarfile.BLKTYPE, tarfile.FIFOTYPE: tarfile.FIFOTYPE}


def _decompressing(source: BinaryIO, kind: str | None) -> BinaryIO:
    if kind == "gzip":
        import gzip

        return gzip.GzipFile(fileobj=source, mode="rb")  # type: ignore[return-value]
    if kind == "bzip2":
        import bz2

        return bz2.BZ2File(source)  # type: ignore[return-value]
    if kind == "xz":
        import lzma

        return lzma.LZMAFile(source)  # type: ignore[return-value]
    if kind == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(source, read_across_frames=True)
    return source


def _kind(head: bytes) -> str | None:
    return next((kind for magic, kind in MAGIC.items() if head.startswith(magic)), None)


def is_archive(path: str) -> bool:
    """Whether ADD unpacks this file: its first tar member reads (decompressed when it is
    compressed), as Docker's IsArchivePath decides: a gzip of a plain file, or a tar whose
    first header is damaged or over the caps, is copied as the file it is."""
    try:
        with open(path, "rb") as f:
            kind = _kind(f.read(6))
            f.seek(0)
            stream = _decompressing(f, kind)
            head = b""
            # As much as the first member's headers may take; a stream cut short is read up to the
            # cut, in small reads (a decompressor gives nothing of a read it cannot finish).
            try:
                while len(head) < MAX_HEADER + 3 * tarfile.BLOCKSIZE:
                    chunk = stream.read(tarfile.BLOCKSIZE)
                    if not chunk:
                        break
                    head += chunk
                    if len(head) >= tarfile.BLOCKSIZE and not _header_ok(head):
                        return False
            except EOFError:
                pass
        with tarfile.open(fileobj=io.BytesIO(head), mode="r|", tarinfo=_CappedInfo) as tar:
            return tar.next() is not None
    except Exception:  # noqa: BLE001 (each decompressor has its own error classes: not an archive)
        return False


def _header_ok(head: bytes) -> bool:
    try:
        tarfile.TarInfo.frombuf(head[:tarfile.BLOCKSIZE], "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


def _decompression_errors() -> tuple[type[BaseException], ...]:
    import lzma
    import zlib

    import zstandard

    return (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError, zstandard.ZstdError)


class _Counted:
    """The decompressed stream, its bytes counted against the budget."""

    def __init__(self, raw: BinaryIO, budget: Budget, name: str) -> None:
        self.raw, self.budget, self.name, self.count = raw, budget, name, 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size if size is not None and size >= 0 else 1 << 20)
        self.count += len(data)
        if self.count > self.budget.max_size + 2 * tarfile.RECORDSIZE:  # a tar's own padding aside
            raise IntegrityError(f"{self.name}: more than {self.budget.max_size} bytes once uncompressed "
                                 "(--max-size)")
        return data


class _CappedInfo(tarfile.TarInfo):
    """A tar header whose pax or GNU long-name data is at most MAX_HEADER bytes (Go's limit),
    and a truncated or damaged header an error, as Go's archive/tar has it (Python's tarfile
    takes either for the end of the archive once past the first member)."""

    @classmethod
    def fromtarfile(cls, tarfile_: tarfile.TarFile) -> _CappedInfo:
        try:
            return super().fromtarfile(tarfile_)
        except (tarfile.TruncatedHeaderError, tarfile.InvalidHeaderError) as err:  # type: ignore[attr-defined]
            raise InvalidInput(f"a truncated or damaged tar header at byte {tarfile_.offset}: {err}") from None

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME,
                         tarfile.GNUTYPE_LONGLINK) and self.size > MAX_HEADER:
            raise IntegrityError(f"a {self.size}-byte extended header (more than {MAX_HEADER})")
        return super()._proc_member(tarfile_)  # type: ignore[misc]


def _inside(name: str, archive: str, what: str = "path") -> str:
    """An entry name (or hard-link target) as a clean path below the destination."""
    if "\0" in name:
        raise IntegrityError(f"{archive}: tar entry {name!r}: a NUL byte in its {what}")
    cleaned = posixpath.normpath(name).lstrip("/")  # `/x` is `x` below the destination (`/..` is `/`)
    if cleaned == ".." or cleaned.startswith("../"):
        raise IntegrityError(f"{archive}: tar entry {name!r}: {what} leaves the destination")
    return "" if cleaned == "." else cleaned


def unpack(tree: Tree, archive: str | BinaryIO, target: str, parents: Owner, budget: Budget,
           name: str | None = None) -> int:
    """Unpack `archive` (a host path, or a stream) into the directory `target` (a container
    path) of `tree`; the number of entries. Errors name `name` (default: the archive's path)."""
    if isinstance(archive, str):
        with open(archive, "rb") as f:
            return unpack(tree, f, target, parents, budget, name or archive)
    shown = name or "<stdin>"
    count = 0
    source = _Peeked(archive, 6)
    kind = _kind(source.head)
    stream = _Counted(_decompressing(source, kind), budget, shown)  # type: ignore[arg-type]
    try:
        with tarfile.open(fileobj=stream, mode="r|", tarinfo=_CappedInfo) as tar:  # type: ignore[call-overload]
            for member in tar:
                _put(tree, tar, member, target, parents, budget, shown)
                count += 1
    except OciError as err:
        if isinstance(err, (IntegrityError, InvalidInput)) and not err.message.startswith(shown):
            err.message = f"{shown}: {err.message}"
            err.args = (err.message,)
        raise
    except tarfile.StreamError as err:
        raise Unsupported(f"{shown}: {err} (a tar entry that needs seeking: sparse?)") from None
    except tarfile.TarError as err:
        raise InvalidInput(f"{shown}: not a valid tar archive: {err}") from None
    except _decompression_errors() as err:
        if isinstance(err, OSError) and err.filename:
            raise
        raise InvalidInput(f"{shown}: cannot decompress ({kind or 'tar'}): {err}") from None
    tree.finish()
    return count


class _Peeked:
    """A stream whose first bytes were read ahead (`head`) and are read again."""

    def __init__(self, raw: BinaryIO, size: int) -> None:
        self.raw = raw
        self.head = b""
        while len(self.head) < size:
            chunk = raw.read(size - len(self.head))
            if not chunk:
                break
            self.head += chunk
        self.pending = self.head

    def read(self, size: int = -1) -> bytes:
        if self.pending:
            if size is None or size < 0:
                data, self.pending = self.pending + self.raw.read(), b""
                return data
            data, self.pending = self.pending[:size], self.pending[size:]
            return data
        return self.raw.read(size)

    def readable(self) -> bool:
        return True


def _put(tree: Tree, tar: tarfile.TarFile, member: tarfile.TarInfo, target: str, parents: Owner, budget: Budget,
         archive: str) -> None:
    budget.count_entry()
    rel = _inside(member.name, archive)
    if not rel:
        return  # the destination itself (`./`): left as it is, as Docker leaves it
    path = posixpath.join(target, rel)
    xattrs = {key[len("SCHILY.xattr."):]: value.encode("utf-8", "surrogateescape")
              for key, value in sorted(member.pax_headers.items()) if key.startswith("SCHILY.xattr.")}
    entry = Entry(rel, tarfile.REGTYPE, mode=member.mode & 0o7777, uid=member.uid, gid=member.gid,
                  mtime=max(0, int(member.mtime)), xattrs={k: v for k, v in xattrs.items() if keeps_xattr(k)})
    link = None
    if member.isreg():
        if member.size > budget.bytes_left:
            raise IntegrityError(f"{archive}: tar entry {member.name!r}: {member.size} bytes, more than the "
                                 f"{budget.bytes_left} left (--max-size)")
        budget.size += member.size
        entry.size = member.size
        entry.opener = _opener(tar, member)
    elif member.type in _TYPES:
        entry.type = _TYPES[member.type]
        if member.issym():
            entry.linkname = member.linkname
        elif member.islnk():
            link = posixpath.join(target, _inside(member.linkname, archive, "hard-link target"))
            if tree.lstat(link) is None:
                raise IntegrityError(f"{archive}: tar entry {member.name!r}: hard link to {member.linkname!r}, "
                                     "which is not there")
        elif member.isdev():
            entry.devmajor, entry.devminor = member.devmajor, member.devminor
    else:
        raise Unsupported(f"{archive}: tar entry {member.name!r}: unsupported type {member.type!r}")
    tree.put(entry, path, None, None, link, parents)


def _opener(tar: tarfile.TarFile, member: tarfile.TarInfo) -> Callable[[], BinaryIO]:
    def opener() -> BinaryIO:
        found = tar.extractfile(member)
        assert found is not None
        return found  # type: ignore[return-value]

    return opener
