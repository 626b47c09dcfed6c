"""Sources of COPY and ADD: paths in the build context (or in another stage's root), globs,
the ignore file, and a content digest of what a step copies.

* A source path is relative to the root it is taken from; `..` cannot leave it, and
  symlinks on the way are followed inside it (also the last component, as Docker does).
* Wildcards are Go's `filepath.Match`, one path component at a time: `*`, `?`, `[a-z]`,
  `[^a]`, `\\` escapes.
* In the context, a path the ignore file excludes is not there; a directory is walked
  without its excluded parts (an excluded directory only for what an exception re-includes).
* The digest covers each copied file's path, type, mode, size, link target, xattrs and
  content (not owners or times: COPY sets the owner, and a touched file is the same file).
  File contents are hashed once and remembered by (size, mtime, ctime, inode) in the
  cache, so an unchanged rebuild reads no file.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import posixpath
import re
import stat
import tarfile
from dataclasses import dataclass, field

from oci.build.entry import Entry
from oci.build.source import entry_of
from oci.dockerfile.cache import read_record
from oci.dockerfile.ignore import Matcher
from oci.errors import InvalidInput, NotFound
from oci.fsutil import write_atomic
from oci.linux.kernel import RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, kernel

_RESOLVE = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS
_WILDCARD = re.compile(r"(?<!\\)[*?\[]")
_TYPES = {tarfile.REGTYPE: "f", tarfile.DIRTYPE: "d", tarfile.SYMTYPE: "l", tarfile.LNKTYPE: "h",
          tarfile.CHRTYPE: "c", tarfile.BLKTYPE: "b", tarfile.FIFOTYPE: "p"}


def has_wildcard(path: str) -> bool:
    return _WILDCARD.search(path) is not None


def _component_regex(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\" and i < len(pattern):
            out.append(re.escape(pattern[i]))
            i += 1
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise InvalidInput(f"invalid pattern {pattern!r}: unterminated [")
            body = pattern[i:end]
            negate = body.startswith("^")
            body = body[1:] if negate else body
            escaped = re.sub(r"\\(.)", r"\1", body).replace("\\", "\\\\").replace("]", "\\]")
            out.append(("[^" if negate else "[") + escaped + "]")
            i = end + 1
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def source_path(text: str) -> str:
    """A source argument as a clean path relative to its root; refuses paths that leave it."""
    joined = posixpath.normpath(text.lstrip("/") or ".")
    if joined == ".." or joined.startswith("../"):
        raise InvalidInput(f"{text}: forbidden path outside the build context")
    return "" if joined == "." else joined


class HashCache:
    """sha256 of context files, remembered by (size, mtime, ctime, inode) between builds (a
    cache record of kind `context`)."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.files: dict[str, list] = {}
        self.changed = False
        if path:
            doc = read_record(path, "context")
            if doc is not None:
                self.files = doc["files"]

    def digest(self, path: str, st: os.stat_result) -> str:
        key = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        found = self.files.get(path)
        if isinstance(found, list) and found[:4] == key and len(found) == 5:
            return str(found[4])
        hasher = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                hasher.update(chunk)
        value = hasher.hexdigest()
        self.files[path] = [*key, value]
        self.changed = True
        return value

    def save(self) -> None:
        if not self.path or not self.changed:
            return

        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        write_atomic(self.path, json.dumps({"kind": "context", "files": self.files}).encode())
        self.changed = False


@dataclass
class Found:
    """A source that matched: its path relative to the root, where it is on this host, its stat."""

    rel: str
    host: str
    st: os.stat_result

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.st.st_mode)


@dataclass
class Item:
    """One file to write: its path relative to the copy's destination and its entry."""

    rel: str
    entry: Entry
    host: str = ""
    link_rel: str | None = None  # a hard link: the rel of the first name


@dataclass
class SourceRoot:
    """A directory that sources are taken from: the build context, or a stage's root."""

    path: str
    ignore: Matcher = field(default_factory=lambda: Matcher([]))
    hashes: HashCache | None = None

    def __post_init__(self) -> None:
        self.path = os.path.abspath(self.path)

    def _resolve(self, rel: str) -> str | None:
        """The host path of `rel`, symlinks followed inside the root; None when missing."""
        if not rel:
            return self.path
        try:
            root = os.open(self.path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as err:
            raise NotFound(f"{self.path}: {err.strerror}") from None
        try:
            fd = kernel().openat2(root, rel, os.O_PATH | os.O_CLOEXEC, _RESOLVE)
        except OSError as err:
            if err.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                return None
            raise
        finally:
            os.close(root)
        try:
            return os.readlink(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)

    def _listing(self, rel: str) -> list[str]:
        host = self._resolve(rel)
        if host is None or not os.path.isdir(host):
            return []
        return sorted(os.listdir(host))

    def select(self, text: str) -> list[Found]:
        """The paths a source argument names (a wildcard may name none), ignored ones left out."""
        rel = source_path(text)
        if not has_wildcard(rel):
            found = self._found(rel)
            return [found] if found is not None else []
        candidates = [""]
        for part in rel.split("/"):
            if not has_wildcard(part):
                candidates = [posixpath.join(c, part) if c else part for c in candidates]
                continue
            regex = _component_regex(part)
            candidates = [posixpath.join(c, name) if c else name
                          for c in candidates for name in self._listing(c) if regex.match(name)]
        return [f for f in (self._found(c) for c in sorted(candidates)) if f is not None]

    def _found(self, rel: str) -> Found | None:
        if rel and self.ignore.excluded(rel):
            return None
        host = self._resolve(rel)
        if host is None:
            return None
        try:
            return Found(rel, host, os.stat(host))
        except FileNotFoundError:
            return None

    def items(self, found: Found) -> list[Item]:
        """What copying `found` writes: the file itself, or the contents of a directory."""
        links: dict[tuple[int, int], str] = {}
        if not found.is_dir:
            entry = entry_of(found.host, posixpath.basename(found.rel) or ".", found.st, links)
            return [Item(entry.name, entry, found.host)] if entry is not None else []
        items: list[Item] = []
        self._walk(found.host, found.rel, "", items, links)
        return items

    def _walk(self, host: str, rel: str, below: str, items: list[Item], links: dict[tuple[int, int], str]) -> bool:
        """Add the entries under directory `host`; True when anything was added."""
        try:
            names = sorted(os.listdir(host))
        except OSError as err:
            raise InvalidInput(f"{host}: cannot list: {err.strerror}") from None
        added = False
        for name in names:
            child_rel = f"{rel}/{name}" if rel else name
            child_below = f"{below}/{name}" if below else name
            path = os.path.join(host, name)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            excluded = bool(self.ignore) and self.ignore.excluded(child_rel)
            if stat.S_ISDIR(st.st_mode):
                if excluded and not self.ignore.may_include_below(child_rel):
                    continue
                entry = entry_of(path, child_below, st, links)
                if entry is None:
                    continue
                mark = len(items)
                items.append(Item(child_below, entry, path))
                if not self._walk(path, child_rel, child_below, items, links) and excluded:
                    del items[mark]
                    continue
                added = True
                continue
            if excluded:
                continue
            entry = entry_of(path, child_below, st, links)
            if entry is None:
                continue
            item = Item(child_below, entry, path)
            if entry.type == tarfile.LNKTYPE:
                item.link_rel = entry.linkname
            items.append(item)
            added = True
        return added

    def digest(self, items: list[Item], hasher: hashlib._Hash) -> None:
        """Feed the content digest of `items` into `hasher`."""
        for item in items:
            entry = item.entry
            content = ""
            if entry.type == tarfile.REGTYPE and item.host:
                st = os.stat(item.host)
                content = self.hashes.digest(item.host, st) if self.hashes else _hash_file(item.host)
            xattrs = ",".join(f"{k}={v.hex()}" for k, v in sorted(entry.xattrs.items()))
            line = (f"{item.rel}\0{_TYPES.get(entry.type, '?')}\0{entry.mode & 0o7777:o}\0{entry.size}\0"
                    f"{entry.linkname}\0{entry.devmajor}:{entry.devminor}\0{xattrs}\0{content}\n")
            hasher.update(line.encode("utf-8", "surrogateescape"))


def _hash_file(path: str) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            hasher.update(chunk)
    return hasher.hexdigest()

