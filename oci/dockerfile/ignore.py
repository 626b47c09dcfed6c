"""`.dockerignore` patterns, matched as Docker matches them (moby/patternmatcher).

* One pattern per line; lines starting with `#` are comments; white space around a pattern
  is dropped; a pattern is cleaned like a path (`a//b/../c` is `a/c`) and a leading `/` is
  dropped (patterns are relative to the context root).
* `*` matches any run of characters but `/`, `?` one character but `/`, `[...]` a class,
  `\\` escapes; `**` matches any number of directories (`**/x`, `a/**/b`, `a/**`).
* A path is excluded when the last pattern that matches it, or matches one of its parent
  directories, is not an exception; `!pattern` is an exception that re-includes.

Which file: `FILE.dockerignore` beside the Dockerfile (BuildKit), else `.dockerignore`, else
`.containerignore` (podman, buildah) in the context root.
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass
from typing import BinaryIO

from oci.errors import InvalidInput

IGNORE_FILES = (".dockerignore", ".containerignore")
MAX_SIZE = 16 << 20
_REGEX_SPECIAL = set(".+()|{}$")


@dataclass
class Pattern:
    """One cleaned pattern and whether it is an exception (`!`)."""

    text: str
    exclusion: bool
    regex: re.Pattern[str]
    depth: int  # number of path components, to know which parents may match

    def match(self, path: str) -> bool:
        return self.regex.match(path) is not None


def _compile(pattern: str) -> re.Pattern[str]:
    out = ["^"]
    i = 0
    n = len(pattern)
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*":
            if i < n and pattern[i] == "*":
                i += 1
                if i < n and pattern[i] == "/":
                    i += 1
                if i >= n:
                    out.append(".*")
                else:
                    out.append("(.*/)?")
            else:
                out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\":
            if i < n:
                out.append(re.escape(pattern[i]))
                i += 1
            else:
                out.append(r"\\")
        elif ch in "[]":
            out.append(ch)
        elif ch in _REGEX_SPECIAL:
            out.append("\\" + ch)
        else:
            out.append(ch)
    out.append("$")
    try:
        return re.compile("".join(out), re.DOTALL)
    except re.error as err:
        raise InvalidInput(f"invalid .dockerignore pattern {pattern!r}: {err}") from None


def _clean(pattern: str) -> str:
    cleaned = posixpath.normpath(pattern)
    if cleaned.startswith("//"):
        cleaned = cleaned[1:]
    return cleaned


class Matcher:
    """A list of patterns; `excluded(path)` says whether a context path is left out."""

    def __init__(self, patterns: list[str]) -> None:
        self.patterns: list[Pattern] = []
        for raw in patterns:
            text = raw.strip()
            if not text:
                continue
            exclusion = text.startswith("!")
            if exclusion:
                text = text[1:].strip()
                if not text:
                    raise InvalidInput('illegal exclusion pattern: "!"')
            text = _clean(text)
            if text.startswith("/") and len(text) > 1:
                text = text[1:]
            self.patterns.append(Pattern(text, exclusion, _compile(text), text.count("/") + 1))
        self.has_exclusions = any(p.exclusion for p in self.patterns)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def excluded(self, path: str) -> bool:
        """Whether the context-relative `path` (`/`-separated, no leading `/`) is ignored."""
        if not self.patterns or path in ("", "."):
            return False
        parents = path.split("/")[:-1]
        matched = False
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue
            hit = pattern.match(path)
            if not hit and parents:
                for i in range(1, len(parents) + 1):
                    if pattern.match("/".join(parents[:i])):
                        hit = True
                        break
            if hit:
                matched = not pattern.exclusion
        return matched

    def may_include_below(self, directory: str) -> bool:
        """Whether an exception could re-include something under an excluded `directory`
        (if not, the walk skips the whole tree)."""
        if not self.has_exclusions:
            return False
        prefix = directory + "/"
        for pattern in self.patterns:
            if not pattern.exclusion:
                continue
            literal = re.split(r"[*?\[\\]", pattern.text, maxsplit=1)[0]
            if literal.startswith(prefix) or prefix.startswith(literal) or "**" in pattern.text:
                return True
        return False


def read_patterns(text: str) -> list[str]:
    """The patterns of an ignore file (comments and blank lines dropped)."""
    if text.startswith("\ufeff"):
        text = text[1:]
    patterns = []
    for line in text.removesuffix("\n").split("\n"):  # as Go's bufio.ScanLines: `\n` or `\r\n` ends a line
        line = line.removesuffix("\r")
        if line.startswith("#"):
            continue
        patterns.append(line)
    return patterns


def find(context: str, dockerfile: str | None) -> str | None:
    """The ignore file that applies: `DOCKERFILE.dockerignore`, else the context's."""
    names = ([dockerfile + ".dockerignore"] if dockerfile else []) + [os.path.join(context, n) for n in IGNORE_FILES]
    for path in names:
        try:
            _open(context, path).close()
            return path
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            continue
        except OSError:
            return path  # unreadable: `load` says why
    return None


def _open(context: str, path: str) -> BinaryIO:
    from oci.dockerfile.context import open_in

    return open_in(context, path)


def load(context: str, dockerfile: str | None) -> Matcher:
    """The matcher for a build context (empty when there is no ignore file). Inside the
    context, symlinks are resolved inside it."""
    path = find(context, dockerfile)
    if path is None:
        return Matcher([])
    try:
        with _open(context, path) as f:
            data = f.read(MAX_SIZE + 1)
        if len(data) > MAX_SIZE:
            raise InvalidInput(f"{path}: larger than {MAX_SIZE >> 20} MiB: not an ignore file")
        text = data.decode("utf-8", "surrogateescape")
    except OSError as err:
        raise InvalidInput(f"{path}: cannot read: {err.strerror}") from None
    try:
        return Matcher(read_patterns(text))
    except InvalidInput as err:
        raise InvalidInput(err.message, source=path) from None
