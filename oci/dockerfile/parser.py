"""A Dockerfile read into instruction lines, as BuildKit's parser reads it.

* Parser directives (`# escape=` and `# syntax=`, `# check=`) count only at the top, before
  any other line; `escape` may be `\\` (default) or a backtick.
* A line whose first non-blank character is `#` is a comment, also inside a continued
  instruction; so are blank lines inside one (BuildKit warns about those).
* The escape character at the end of a line (white space after it allowed) continues the
  instruction on the next line; the continuation keeps that line's leading white space.
* RUN, COPY and ADD (and ONBUILD of them), in shell form, may use here-documents:
  `<<EOF`, `<<-EOF` (leading tabs removed), `<<"EOF"` or `<<'EOF'` (no expansion); their
  bodies follow the instruction line, each up to its terminator line.
* Leading `--name=value` words are the instruction's flags.

Every node knows its lines, so errors name FILE:LINE.

What BuildKit's scanner does to the text is done here too: a UTF-8 byte order mark is
dropped and lines end at `\n` or `\r\n` (here-document bodies included); a line longer
than 65535 bytes is refused with BuildKit's message (buildah silently drops the rest of
the file). A NUL byte is refused: no program could be given an argument holding it.
Invalid UTF-8 is kept, byte for byte (as `surrogateescape`), as Go keeps it in a string.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from oci.dockerfile.words import ExpansionError, Lexer
from oci.errors import InvalidInput, OciError

DEFAULT_ESCAPE = "\\"
MAX_LINE = 65535  # bytes: bufio.MaxScanTokenSize - 1, BuildKit's limit
DIRECTIVES = ("syntax", "escape", "check")
HEREDOC_INSTRUCTIONS = ("run", "copy", "add")
_DIRECTIVE = re.compile(r"^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
WHITESPACE = re.compile(r"[\t\v\f\r ]+")
_HEREDOC = re.compile(r"^(\d*)<<(-?)\s*([^<]*)$", re.DOTALL)
_LEADING_TABS = re.compile(r"^\t+", re.MULTILINE)


class DockerfileError(InvalidInput):
    """A Dockerfile that cannot be read: the message names FILE:LINE."""


def located(err: OciError, source: str, prefix: str = "") -> OciError:
    """`err` (whatever its class) named as happening at `source` (FILE:LINE), its message
    prefixed with what was being done; the exit code stays the error's own."""
    if prefix:
        err.message = f"{prefix}: {err.message}"
    err.source = source
    err.args = (err.message,)
    return err


@dataclass
class Heredoc:
    """A here-document: its terminator word, body and how to treat it."""

    name: str
    content: str = ""
    expand: bool = True
    chomp: bool = False
    fd: int = 0

    def body(self) -> str:
        """The content, leading tabs removed for `<<-`."""
        return _LEADING_TABS.sub("", self.content) if self.chomp else self.content


@dataclass
class Node:
    """One instruction: keyword (lower case), flags, the rest of its line, its here-documents."""

    keyword: str
    args: str
    flags: list[str]
    original: str
    start: int
    end: int
    heredocs: list[Heredoc] = field(default_factory=list)
    child: Node | None = None  # ONBUILD's instruction

    def json_args(self) -> list[str] | None:
        """The arguments as a JSON array of strings, or None when they are in shell form."""
        return parse_json(self.args, self.keyword)

    def where(self, path: str) -> str:
        return f"{path}:{self.start}"


@dataclass
class Dockerfile:
    """A parsed Dockerfile: its nodes, escape character, directives and warnings."""

    path: str
    nodes: list[Node]
    escape: str = DEFAULT_ESCAPE
    directives: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def parse_json(args: str, keyword: str = "") -> list[str] | None:
    """`["a", "b"]` as a list of strings; None when `args` is not a JSON array (shell form).

    An array of anything else is an error, as in Docker.
    """
    text = args.lstrip()
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(item, str) for item in value):
        raise InvalidInput(f"{keyword.upper()}: when using JSON array syntax, arrays must be comprised of "
                           "strings only")
    return value


class _Directives:
    def __init__(self) -> None:
        self.done = False
        self.seen: dict[str, str] = {}
        self.escape = DEFAULT_ESCAPE
        self.continuation = _continuation(DEFAULT_ESCAPE)

    def check(self, line: str) -> bool:
        """Read `line` as a possible directive; True when it was one."""
        if self.done:
            return False
        if not line.startswith("#"):
            self.done = True
            return False
        found = _DIRECTIVE.match(line[1:].lstrip())
        if not found or found.group(1).lower() not in DIRECTIVES:
            self.done = True
            return False
        key, value = found.group(1).lower(), found.group(2)
        if key in self.seen:
            raise InvalidInput(f"only one {key} parser directive can be used")
        self.seen[key] = value
        if key == "escape":
            if value not in ("\\", "`"):
                raise InvalidInput(f"invalid escape token '{value}' does not match ` or \\")
            self.escape = value
            self.continuation = _continuation(value)
        return True


def _continuation(escape: str) -> re.Pattern[str]:
    e = re.escape(escape)
    return re.compile(rf"([^{e}]){e}[ \t]*$|^{e}[ \t]*$")


def _trim_newline(line: str) -> str:
    return line.rstrip("\r\n")


def _is_comment(line: str) -> bool:
    stripped = line.lstrip()
    return stripped.startswith("#")


def parse(text: str, path: str = "Dockerfile") -> Dockerfile:
    """Parse Dockerfile `text` (named `path` in errors)."""
    if text.startswith("\ufeff"):
        text = text[1:]
    text = text.replace("\r\n", "\n")
    if "\0" in text:
        raise DockerfileError("a NUL byte (a binary file, not a Dockerfile?)",
                              source=f"{path}:{text.count(chr(10), 0, text.index(chr(0))) + 1}")
    lines = text.split("\n")
    lines = [line + "\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])
    for number, line in enumerate(lines, start=1):
        if len(line) > MAX_LINE // 4 and len(line.encode("utf-8", "surrogateescape")) > MAX_LINE + 1:
            raise DockerfileError(f"dockerfile line greater than max allowed size of {MAX_LINE}",
                                  source=f"{path}:{number}")
    directives = _Directives()
    nodes: list[Node] = []
    warnings: list[str] = []
    index = 0
    current = 0

    def fail(message: str, line: int) -> DockerfileError:
        return DockerfileError(message, source=f"{path}:{line}")

    while index < len(lines):
        raw = lines[index]
        index += 1
        stripped = _trim_newline(raw).lstrip()
        try:
            directives.check(stripped)
        except InvalidInput as err:
            raise fail(err.message, current + 1) from None
        line = "" if _is_comment(stripped) else stripped
        current += 1
        start = current
        line, ended = _trim_continuation(line, directives)
        if ended and not line:
            continue
        parts = [line]
        empty_continuation = False
        while not ended and index < len(lines):
            raw = lines[index]
            index += 1
            current += 1
            following = _trim_newline(raw)
            if _is_comment(following):
                continue
            if not following.strip():
                empty_continuation = True
                continue
            following, ended = _trim_continuation(following, directives)
            parts.append(following)
        logical = "".join(parts)
        if empty_continuation:
            warnings.append(f"{path}:{current}: empty continuation line in: {logical.strip()}")
        try:
            node = _node(logical, directives.escape, start, current)
        except InvalidInput as err:
            raise fail(err.message, start) from None
        if node is None:
            continue
        target = node.child if node.keyword == "onbuild" and node.child is not None else node
        if target.keyword in HEREDOC_INSTRUCTIONS and "<<" in logical and _shell_form(target):
            try:
                heredocs = _heredocs_in(logical)
            except InvalidInput as err:
                raise fail(err.message, start) from None
            for heredoc in heredocs:
                body, terminated = [], False
                while index < len(lines):
                    raw = lines[index]
                    index += 1
                    current += 1
                    candidate = _trim_newline(raw)
                    if heredoc.chomp:
                        candidate = candidate.lstrip("\t")
                    if candidate == heredoc.name:
                        terminated = True
                        break
                    body.append(raw)
                if not terminated:
                    raise fail("unterminated heredoc", start)
                heredoc.content = "".join(body)
                node.heredocs.append(heredoc)
            if target is not node:
                target.heredocs = node.heredocs
        node.end = current
        nodes.append(node)
    if not nodes:
        raise DockerfileError("file with no instructions", source=f"{path}:{current}")
    return Dockerfile(path, nodes, directives.escape, dict(directives.seen), warnings)


def _trim_continuation(line: str, directives: _Directives) -> tuple[str, bool]:
    found = directives.continuation.search(line)
    if found:
        return line[: found.start()] + (found.group(1) or ""), False
    return line, True


def _shell_form(node: Node) -> bool:
    try:
        return node.json_args() is None
    except InvalidInput:
        return True


def _node(line: str, escape: str, start: int, end: int) -> Node | None:
    text = line.strip()
    if not text:
        return None
    pieces = WHITESPACE.split(text, maxsplit=1)
    keyword = pieces[0]
    rest: str = ""
    flags: list[str] = []
    if len(pieces) == 2:
        rest, flags = extract_flags(pieces[1], escape)
    node = Node(keyword.lower(), rest.strip(), flags, line, start, end)
    if node.keyword == "onbuild" and node.args:
        node.child = _node(node.args, escape, start, end)
    return node


def extract_flags(line: str, escape: str = DEFAULT_ESCAPE) -> tuple[str, list[str]]:
    """Leading `--name[=value]` words (quotes and escapes processed) and the rest of the line.

    A lone `--` ends the flags.
    """
    words: list[str] = []
    i = 0
    n = len(line)
    while True:
        while i < n and line[i].isspace():
            i += 1
        if i >= n:
            return "", words
        if not line.startswith("--", i):
            return line[i:], words
        buf: list[str] = []
        quote = ""
        blank_ok = False
        while i < n:
            ch = line[i]
            if quote:
                if ch == quote:
                    quote = ""
                    i += 1
                    continue
                if ch == escape:
                    if i + 1 == n:
                        i += 1
                        quote = ""
                        continue
                    i += 1
                    ch = line[i]
                buf.append(ch)
                i += 1
                continue
            if ch.isspace():
                break
            if ch in ("'", '"'):
                quote, blank_ok = ch, True
                i += 1
                continue
            if ch == escape:
                if i + 1 == n:
                    i += 1
                    continue
                i += 1
                ch = line[i]
            buf.append(ch)
            i += 1
        word = "".join(buf)
        if word == "--":
            return line[i:], words
        if blank_ok or word:
            words.append(word)


def _heredocs_in(line: str) -> list[Heredoc]:
    lexer = Lexer(raw_quotes=True, raw_escapes=True, skip_unset=True)
    try:
        words = lexer.process_words(line, {})
    except ExpansionError:
        return []
    found = []
    for word in words:
        heredoc = parse_heredoc(word)
        if heredoc is not None:
            found.append(heredoc)
    return found


def parse_heredoc(word: str) -> Heredoc | None:
    """The here-document a word like `<<EOF`, `<<-"EOF"` or `3<<EOF` opens, else None."""
    match = _HEREDOC.match(word)
    if not match or not match.group(3):
        return None
    rest = match.group(3)
    words = Lexer(skip_unset=True).process_words(rest, {})
    if len(words) != 1:
        return None
    raw = Lexer(skip_unset=True, raw_quotes=True).process_words(rest, {})
    if len(raw) != len(words):
        raise InvalidInput(f"internal lexing of heredoc produced inconsistent results: {rest}")
    name = words[0]
    quotes = name.count("'") + name.count('"')
    raw_quotes = raw[0].count("'") + raw[0].count('"')
    return Heredoc(name=name, expand=quotes == raw_quotes, chomp=match.group(2) == "-",
                   fd=int(match.group(1) or 0))
