"""Sources of COPY and ADD: paths in the build context (or in another stage's root), globs,
the ignore file, and a content digest of what a step copies.

* A source path is relative to the root it is taken from; `..` cannot leave it (`../x` is
  `x`, as BuildKit and buildah clean it; Docker's legacy builder refused it), and symlinks
  on the way are followed inside it (also the last component, as Docker does): a link to
  `/etc/passwd` names the context's `etc/passwd`. A symlink loop is refused by name.
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
from typing import BinaryIO

from oci.build.entry import Entry
from oci.build.source import entry_of
from oci.dockerfile.cache import read_record
from oci.dockerfile.ignore import Matcher
from oci.dockerfile.tree import open_in_root
from oci.errors import InvalidInput, NotFound
from oci.fsutil import write_atomic

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


def open_in(context: str, path: str) -> BinaryIO:
    """Open file `path` for reading; when it lies in `context`, with symlinks resolved inside
    the context, so that a hostile context's `Dockerfile -> /etc/shadow` reads the context's
    own `etc/shadow` (missing) and never the host's. OSError as open() raises it."""
    context, path = os.path.abspath(context), os.path.abspath(path)
    if os.path.commonpath([context, path]) != context or path == context:
        return open(path, "rb")
    root = os.open(context, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = open_in_root(root, os.path.relpath(path, context), os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise type(err)(err.errno, err.strerror, path) from None
    finally:
        os.close(root)
    if stat.S_ISDIR(os.fstat(fd).st_mode):
        os.close(fd)
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
    return os.fdopen(fd, "rb")


def source_path(text: str) -> str:
    """A source argument as a clean path relative to its root (`..` stops at the root)."""
    joined = posixpath.normpath("/" + text).lstrip("/")
    return "" if joined in ("", ".") else joined


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
class _Frame:
    """A folder being walked: its names still to see, where it is, its own item's index."""

    names: list[str]
    host: str
    rel: str
    below: str
    mark: int | None
    excluded: bool
    added: bool = False


def shown_path(path: str) -> str:
    """A host path for a message: a very long one shortened in the middle."""
    return path if len(path) <= 200 else f"{path[:100]}...{path[-80:]}"


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
    where: str = "build context"  # what errors call it

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
            fd = open_in_root(root, rel, os.O_PATH | os.O_CLOEXEC)
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise InvalidInput(f"{rel}: too many levels of symbolic links (a symlink loop)") from None
            if err.errno in (errno.ENOENT, errno.ENOTDIR):
                return None
            raise
        finally:
            os.close(root)
        try:
            return os.readlink(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)

    def why_missing(self, text: str) -> str:
        """Why source `text` names nothing: a dangling symlink (one to the host's files, say)
        is shown with its target."""
        rel = source_path(text)
        if rel and self.ignore.excluded(rel):
            return f"excluded by the ignore file (.dockerignore) of the {self.where}"
        head, _, name = rel.rpartition("/")
        parent = self._resolve(head) if name else None
        if parent is not None:
            try:
                target = os.readlink(os.path.join(parent, name))
            except OSError:
                pass
            else:
                return f"a symlink to {target}, which is not in the {self.where} (symlinks resolve inside it)"
        return f"no such file or directory in the {self.where}"

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
        matches: list[Found] = []
        for candidate in sorted(candidates):
            if self.ignore.excluded(candidate):
                continue
            match = self._found(candidate)
            if match is None:  # listed, yet nothing there: a dangling symlink (buildah refuses it too)
                raise NotFound(f"{candidate}: {self.why_missing(candidate)}")
            matches.append(match)
        return matches

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

    def _walk(self, host: str, rel: str, below: str, items: list[Item], links: dict[tuple[int, int], str]) -> None:
        """Add the entries under directory `host`, depth first, each folder's in name order (a
        loop, not recursion: a tree of any depth). An excluded folder stays only when an
        exception of the ignore file re-includes something below it."""
        stack = [_Frame(self._names(host), host, rel, below, None, False)]
        while stack:
            frame = stack[-1]
            if not frame.names:
                stack.pop()
                if frame.mark is not None:
                    if frame.excluded and not frame.added:
                        del items[frame.mark]  # nothing below it was kept: its item is the last
                    else:
                        stack[-1].added = True
                continue
            name = frame.names.pop()
            child_rel = f"{frame.rel}/{name}" if frame.rel else name
            child_below = f"{frame.below}/{name}" if frame.below else name
            path = os.path.join(frame.host, name)
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
                items.append(Item(child_below, entry, path))
                stack.append(_Frame(self._names(path), path, child_rel, child_below, len(items) - 1, excluded))
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
            frame.added = True

    @staticmethod
    def _names(host: str) -> list[str]:
        """A folder's names, last first (they are popped)."""
        try:
            return sorted(os.listdir(host), reverse=True)
        except OSError as err:
            raise InvalidInput(f"{shown_path(host)}: cannot list: {err.strerror}") from None

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

