"""Which repositories of a registry hold which blob, learned from every pull and push, as
containers/image keeps it in its blob-info cache: a push to a new repository of a registry
then mounts the blobs the registry holds elsewhere instead of uploading them.

A folder per registry host in `$OCIKIT_BLOB_LOCATIONS` (else /var/lib/ocikit/blob-locations as
root, else $XDG_CACHE_HOME/ocikit/blob-locations), a small file per blob, `ALG/HEX`, naming the
repositories seen holding it, one a line, the newest last (MAX_PER_BLOB of them). A pull or
push reads one small file per blob of the image, whatever the cache's size, and writes only
what is new (an append; the file is rewritten when it grows past MAX_PER_BLOB lines). The
cache only ever saves uploads: one that cannot be read or written costs nothing else, and a
repository it names that no longer holds the blob makes the registry open an upload instead
of a mount. A pull also writes where an image came from on its layout's index entry
(SOURCE_ANNOTATION), a repository a later push of the image may mount from.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable

ENV = "OCIKIT_BLOB_LOCATIONS"
SOURCE_ANNOTATION = "org.ocikit.source"  # on a layout's index entry: the reference an image was fetched from
MAX_PER_BLOB = 4


def default_folder() -> str:
    """Where the files live: $OCIKIT_BLOB_LOCATIONS, /var/lib/ocikit/blob-locations as root,
    else the user's cache folder."""
    folder = os.environ.get(ENV)
    if folder:
        return folder
    if os.geteuid() == 0:
        return "/var/lib/ocikit/blob-locations"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "ocikit", "blob-locations")


class BlobLocations:
    """The repositories of one registry host known to hold each blob."""

    def __init__(self, host: str, folder: str | None = None) -> None:
        usable = bool(host) and "/" not in host and not host.startswith(".")
        self.path = os.path.join(folder or default_folder(), host) if usable else ""

    def _file(self, digest: object) -> str:
        algorithm, _, hex_digest = str(digest).partition(":")
        if not self.path or not hex_digest or not algorithm.isalnum() or not hex_digest.isalnum():
            return ""
        return os.path.join(self.path, algorithm, hex_digest)

    def _read(self, path: str) -> list[str]:
        try:
            with open(path, "rb") as f:
                return [line for line in f.read().decode(errors="replace").split("\n") if line]
        except OSError:
            return []

    def where(self, digest: object) -> list[str]:
        """The repositories known to hold `digest`, the most recently seen first."""
        path = self._file(digest)
        return list(reversed(self._read(path))) if path else []

    def record(self, repository: str, digests: Iterable[object]) -> None:
        """Note that `repository` holds every one of `digests` (written only when that is news)."""
        if not self.path or not repository or any(c in repository for c in " \n\r"):
            return
        for digest in dict.fromkeys(digests):
            path = self._file(digest)
            if not path:
                continue
            known = self._read(path)
            if known and known[-1] == repository:
                continue
            try:
                self._note(path, repository, known)
            except OSError:
                return  # a cache we cannot write only costs mounts

    def _note(self, path: str, repository: str, known: list[str]) -> None:
        if repository not in known and len(known) < MAX_PER_BLOB:  # the common case: one append
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, f"{repository}\n".encode())
            finally:
                os.close(fd)
            return
        from oci.fsutil import write_atomic  # seen again (now the newest), or one too many

        kept = [name for name in known if name != repository][-(MAX_PER_BLOB - 1):] + [repository]
        write_atomic(path, "".join(f"{name}\n" for name in kept).encode())
