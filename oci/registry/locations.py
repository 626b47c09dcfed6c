"""Which repositories of a registry hold which blob, learned from every pull and push, as
containers/image keeps it in its blob-info cache: a push to a new repository of a registry
then mounts the blobs the registry holds elsewhere instead of uploading them.

One text file per registry host in a folder (`$OCIKIT_BLOB_LOCATIONS`, else
/var/lib/ocikit/blob-locations as root, else $XDG_CACHE_HOME/ocikit/blob-locations), lines of
`DIGEST REPOSITORY`, the newest last. Reading costs one open and a split per line, and
nothing is written when a pull or push learns nothing new; what is new is appended under an
flock. Past MAX_LINES the file is rewritten with the newest MAX_PER_BLOB repositories of each
blob. The cache only ever saves uploads: one that cannot be read or written costs nothing else,
and a repository it names that no longer holds the blob makes the registry open an upload
instead of a mount.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable

ENV = "OCIKIT_BLOB_LOCATIONS"
MAX_LINES = 20_000
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
        self._known: dict[str, list[str]] | None = None
        self._lines = 0

    def _load(self) -> dict[str, list[str]]:
        if self._known is None:
            self._known = {}
            try:
                with open(self.path, "rb") as f:
                    text = f.read().decode(errors="replace")
            except OSError:
                text = ""
            lines = text.split("\n")
            self._lines = len(lines)
            for line in lines:
                digest, _, repository = line.partition(" ")
                if repository and ":" in digest and " " not in repository:  # a torn line is skipped
                    places = self._known.setdefault(digest, [])
                    if repository in places:
                        places.remove(repository)
                    places.append(repository)
        return self._known

    def where(self, digest: object) -> list[str]:
        """The repositories known to hold `digest`, the most recently seen first."""
        if not self.path:
            return []
        return list(reversed(self._load().get(str(digest), [])))

    def record(self, repository: str, digests: Iterable[object]) -> None:
        """Note that `repository` holds every one of `digests` (written only when that is news)."""
        if not self.path or not repository or " " in repository or "\n" in repository:
            return
        known = self._load()
        new = [str(d) for d in dict.fromkeys(digests) if repository not in known.get(str(d), ())]
        if not new:
            return
        try:
            self._append(repository, new)
        except OSError:
            return  # a cache we cannot write only costs mounts
        for digest in new:
            known.setdefault(digest, []).append(repository)

    def _append(self, repository: str, digests: list[str]) -> None:
        import fcntl

        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, "".join(f"{digest} {repository}\n" for digest in digests).encode())
            self._lines += len(digests)
            if self._lines > MAX_LINES:
                self._compact()
        finally:
            os.close(fd)

    def _compact(self) -> None:
        """Rewrite the file with the newest MAX_PER_BLOB repositories of each blob (under the lock)."""
        from oci.fsutil import write_atomic

        self._known = None
        known = self._load()
        lines = [f"{digest} {repository}\n" for digest, places in known.items()
                 for repository in places[-MAX_PER_BLOB:]]
        write_atomic(self.path, "".join(lines).encode())
        self._lines = len(lines)
