"""Docker's shell-like word processing: quotes, escapes, variable expansion, word splitting.

The rules are those of BuildKit's Dockerfile frontend (`shell/lex.go`), which is what a
Dockerfile author tests against:

* `'...'` keeps everything literally (no escape inside); `"..."` expands `$` and lets the
  escape character quote only `"`, `$` and itself; elsewhere the escape character quotes
  the next character; quotes are removed unless `raw_quotes`;
* `$NAME`, `${NAME}`; `${NAME:-word}` / `${NAME-word}` (word when unset, or empty with `:`),
  `${NAME:+word}` / `${NAME+word}`, `${NAME:?message}` / `${NAME?message}` (an error),
  `${NAME#pattern}`, `##`, `%`, `%%` (shortest or longest prefix or suffix removed, `*` and
  `?` wildcards) and `${NAME/pattern/replacement}` (`//` for every match);
* an unset variable expands to nothing (or stays as written with `skip_unset`);
* `process_words` splits the result on white space; text that came from a variable is split
  too, quoted text never.

Hostile words are bounded: an expansion may nest `${...}` at most `MAX_DEPTH` deep and
yield at most `MAX_EXPANSION` characters (`ENV A=$A$A`, repeated, doubles a value each
time; BuildKit and buildah grow it until memory runs out). The `#`, `%` and `/` patterns are
matched by a finite automaton in time linear in the value (a backtracking regular
expression takes exponential time on `*a*a*a*b`).
"""

from __future__ import annotations

from typing import Mapping

from oci.errors import InvalidInput

SPECIAL_PARAMS = "@*#?-$!0"
MAX_DEPTH = 64
MAX_EXPANSION = 1 << 20
_EOF = ""


class ExpansionError(InvalidInput):
    """A word that cannot be processed: an unterminated quote, a bad substitution, `${X:?}`."""


class _Words:
    """Collects the words of `process_words`: white space ends a word unless it was quoted."""

    def __init__(self) -> None:
        self.buf: list[str] = []
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if ch.isspace():
            if self.in_word and self.buf:
                self.words.append("".join(self.buf))
                self.buf.clear()
                self.in_word = False
        else:
            self.add_raw(ch)

    def add_raw(self, text: str) -> None:
        self.buf.append(text)
        self.in_word = True

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def result(self) -> list[str]:
        if self.buf:
            self.words.append("".join(self.buf))
            self.buf.clear()
            self.in_word = False
        return self.words


class Lexer:
    """A word processor for one escape character and set of options (see the module doc)."""

    def __init__(self, escape: str = "\\", *, raw_quotes: bool = False, raw_escapes: bool = False,
                 skip_process_quotes: bool = False, skip_unset: bool = False) -> None:
        self.escape = escape
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_process_quotes = skip_process_quotes
        self.skip_unset = skip_unset

    def process_word(self, word: str, env: Mapping[str, str]) -> str:
        """`word` with quotes removed and variables expanded (white space kept)."""
        return _Scan(self, word, env).run()[0]

    def process_words(self, word: str, env: Mapping[str, str]) -> list[str]:
        """`word` expanded, then split into words on white space that was not quoted."""
        return _Scan(self, word, env).run()[1]


class _Scan:
    def __init__(self, lexer: Lexer, text: str, env: Mapping[str, str]) -> None:
        self.lx, self.text, self.env, self.pos = lexer, text, env, 0
        self.raw_escapes = lexer.raw_escapes
        self.depth = 0
        self.size = 0  # characters expanded so far

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else _EOF

    def next(self) -> str:
        if self.pos >= len(self.text):
            return _EOF
        ch = self.text[self.pos]
        self.pos += 1
        return ch

    def fail(self, message: str) -> ExpansionError:
        shown = self.text if len(self.text) <= 80 else self.text[:77] + "..."
        return ExpansionError(f"failed to process {shown!r}: {message}")

    def grew(self, text: str) -> str:
        """`text`, counted against the expansion cap."""
        self.size += len(text)
        if self.size > MAX_EXPANSION:
            raise self.fail(f"expands to more than {MAX_EXPANSION} characters")
        return text

    def run(self) -> tuple[str, list[str]]:
        return self.stop_on(_EOF, self.raw_escapes)

    def stop_on(self, stop: str, raw_escapes: bool) -> tuple[str, list[str]]:
        saved, self.raw_escapes = self.raw_escapes, raw_escapes
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"substitutions nested more than {MAX_DEPTH} deep")
        try:
            return self._stop_on(stop)
        finally:
            self.raw_escapes = saved
            self.depth -= 1

    def _stop_on(self, stop: str) -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        quotes = not self.lx.skip_process_quotes
        while self.peek() != _EOF:
            ch = self.peek()
            if stop and ch == stop:
                self.next()
                return "".join(result), words.result()
            if ch == "$":
                text = self.grew(self.dollar())
                result.append(text)
                words.add_string(text)
            elif ch == "<":
                text = self.possible_heredoc()
                result.append(text)
                words.add_raw(text)
            elif quotes and ch == "'":
                text = self.single_quote()
                result.append(text)
                words.add_raw(text)
            elif quotes and ch == '"':
                text = self.double_quote()
                result.append(text)
                words.add_raw(text)
            else:
                ch = self.next()
                if ch == self.lx.escape:
                    if self.raw_escapes:
                        words.add_raw(ch)
                        result.append(ch)
                    ch = self.next()
                    if ch == _EOF:
                        break
                    words.add_raw(ch)
                else:
                    words.add_char(ch)
                result.append(ch)
        if stop:
            raise self.fail(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.result()

    def single_quote(self) -> str:
        first = self.next()
        out = [first] if self.lx.raw_quotes else []
        while True:
            ch = self.next()
            if ch == _EOF:
                raise self.fail("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if self.lx.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def double_quote(self) -> str:
        first = self.next()
        out = [first] if self.lx.raw_quotes else []
        while True:
            ch = self.peek()
            if ch == _EOF:
                raise self.fail("unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                self.next()
                if self.lx.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if ch == "$":
                out.append(self.grew(self.dollar()))
                continue
            ch = self.next()
            if ch == self.lx.escape:
                if self.raw_escapes:
                    out.append(ch)
                following = self.peek()
                if following == _EOF:
                    continue
                if following in ('"', "$", self.lx.escape):
                    ch = self.next()
            out.append(ch)

    def possible_heredoc(self) -> str:
        self.next()
        if self.peek() != "<":
            return "<"
        self.next()
        space = []
        while self.peek() in ("\t", "\r", " ") and self.peek() != _EOF:
            space.append(self.next())
        return "<<" + "".join(space)

    def name(self) -> str:
        ch = self.peek()
        if ch and ch.isdigit():
            digits = []
            while self.peek() and self.peek().isdigit():
                digits.append(self.next())
            return "".join(digits)
        if ch and ch in SPECIAL_PARAMS:
            return self.next()
        out = []
        while self.peek() and (self.peek().isalnum() or self.peek() == "_"):
            out.append(self.next())
        return "".join(out)

    def lookup(self, name: str) -> tuple[str, bool]:
        value = self.env.get(name)
        return ("", False) if value is None else (value, True)

    def dollar(self) -> str:
        self.next()
        if self.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            value, found = self.lookup(name)
            if not found and self.lx.skip_unset:
                return "$" + name
            return value
        self.next()
        if self.peek() == _EOF:
            raise self.fail("syntax error: missing '}'")
        if self.peek() in "{}:":
            raise self.fail("syntax error: bad substitution")
        name = self.name()
        ch = self.next()
        if ch == _EOF:
            raise self.fail("syntax error: missing '}'")
        modifier = ch
        if ch == "}":
            value, found = self.lookup(name)
            if not found and self.lx.skip_unset:
                return "${" + name + "}"
            return value
        if ch == "/":
            return self.replace(name)
        null_is_unset = ch == ":"
        if null_is_unset:
            ch = self.next()
            modifier += ch
        elif ch not in "+-?#%" or ch == _EOF:
            raise self.fail(f"unsupported modifier ({modifier}) in substitution")
        raw = ch in ("#", "%") and ch != _EOF
        if null_is_unset and raw:
            raise self.fail(f"unsupported modifier ({modifier}) in substitution")
        word = self.braced(raw)
        value, found = self.lookup(name)
        if self.lx.skip_unset and not found:
            return "${" + name + modifier + word + "}"
        empty = not found or (null_is_unset and value == "")
        if ch == "-":
            return word if empty else value
        if ch == "+":
            return "" if empty else word
        if ch == "?":
            if not found:
                raise ExpansionError(f"{name}: {word or 'is not allowed to be unset'}")
            if null_is_unset and value == "":
                raise ExpansionError(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        if ch in ("#", "%"):
            greedy = word.startswith(ch)
            if greedy:
                word = word[1:]
            return _trim_suffix(word, value, greedy) if ch == "%" else _trim_prefix(word, value, greedy)
        raise self.fail(f"unsupported modifier ({modifier}) in substitution")

    def braced(self, raw_escapes: bool) -> str:
        try:
            return self.stop_on("}", raw_escapes)[0]
        except ExpansionError:
            if self.peek() == _EOF:
                raise self.fail("syntax error: missing '}'") from None
            raise

    def replace(self, name: str) -> str:
        every = self.peek() == "/"
        if every:
            self.next()
        try:
            pattern = self.stop_on("/", True)[0]
        except ExpansionError:
            raise self.fail("syntax error: missing '/' in ${}") from None
        replacement = self.braced(True)
        value, found = self.lookup(name)
        if self.lx.skip_unset and not found:
            return "${" + name + "/" + pattern + "/" + replacement + "}"
        return _replace(pattern, value, replacement, every)


STAR, ANY = object(), object()  # the tokens of `*` and `?`; other tokens are literal characters


def _tokens(pattern: str) -> list[object]:
    """A shell wildcard pattern (`*`, `?`, `\\` escapes; no brackets) as a list of tokens."""
    out: list[object] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            if not out or out[-1] is not STAR:  # `**` is `*`
                out.append(STAR)
        elif ch == "?":
            out.append(ANY)
        elif ch == "\\":
            following = pattern[i] if i < len(pattern) else ""
            if following in ("}", "/"):
                continue
            if following not in ("*", "?", "\\"):
                raise ExpansionError(f"invalid pattern ({pattern}) in substitution: invalid escape '\\{following}'")
            out.append(following)
            i += 1
        else:
            out.append(ch)
    return out


def _closure(tokens: list[object], states: set[int]) -> set[int]:
    """`states` with those a `*` reaches by matching nothing."""
    found = set(states)
    for state in sorted(states):
        while state < len(tokens) and tokens[state] is STAR:
            state += 1
            found.add(state)
    return found


def _step(tokens: list[object], states: set[int], ch: str) -> set[int]:
    after = set()
    for state in states:
        if state == len(tokens):
            continue
        token = tokens[state]
        if token is STAR:
            after.add(state)
        elif token is ANY or token == ch:
            after.add(state + 1)
    return _closure(tokens, after)


def _prefix_ends(tokens: list[object], value: str, start: int = 0) -> list[int]:
    """Every end (ascending) of a prefix of `value[start:]` that the pattern matches whole."""
    ends = []
    states = _closure(tokens, {0})
    if len(tokens) in states:
        ends.append(start)
    for i in range(start, len(value)):
        states = _step(tokens, states, value[i])
        if not states:
            break
        if len(tokens) in states:
            ends.append(i + 1)
    return ends


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    ends = _prefix_ends(_tokens(pattern), value)
    return value[(ends[-1] if greedy else ends[0]):] if ends else value


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    ends = _prefix_ends(list(reversed(_tokens(pattern))), value[::-1])
    return value[: len(value) - (ends[-1] if greedy else ends[0])] if ends else value


def _replace(pattern: str, value: str, replacement: str, every: bool) -> str:
    """The leftmost, longest matches of `pattern` in `value` (the first, or `every` one)
    replaced, as Go's regexp does it for BuildKit, in time linear in `value`."""
    tokens = _tokens(pattern)
    # Where a match may start: a suffix of the reversed value ending there matches `*` + the
    # reversed pattern (one pass over it).
    backwards = [STAR, *reversed(tokens)]
    starts = {len(value) - end for end in _prefix_ends(backwards, value[::-1])}
    out: list[str] = []
    position = 0
    while position <= len(value):
        start = next((i for i in range(position, len(value) + 1) if i in starts), None)
        if start is None:
            break
        end = _prefix_ends(tokens, value, start)[-1]
        out.append(value[position:start])
        out.append(replacement)
        if end == start:  # an empty match: keep the next character and go on after it
            if start < len(value):
                out.append(value[start])
            position = start + 1
        else:
            position = end
        if not every:
            break
    out.append(value[position:])
    return "".join(out)


def parse_words(rest: str, escape: str = "\\") -> list[str]:
    """Split on white space outside quotes, keeping quotes and escapes (they go later, in
    expansion): how ENV, LABEL and ARG arguments are cut into `KEY=VALUE` words."""
    words: list[str] = []
    buf: list[str] = []
    quote = ""
    blank_ok = False
    in_word = False
    i = 0
    while i < len(rest):
        ch = rest[i]
        if not in_word and not quote:
            if ch.isspace():
                i += 1
                continue
            in_word = True
        if quote:
            if ch == quote:
                quote = ""
            elif ch == escape and quote != "'":
                if i + 1 == len(rest):
                    i += 1
                    continue
                buf.append(ch)
                i += 1
                ch = rest[i]
            buf.append(ch)
            i += 1
            continue
        if ch.isspace():
            if blank_ok or buf:
                words.append("".join(buf))
            buf, blank_ok, in_word = [], False, False
            i += 1
            continue
        if ch in ("'", '"'):
            quote, blank_ok = ch, True
        elif ch == escape:
            if i + 1 == len(rest):
                i += 1
                continue
            buf.append(ch)
            i += 1
            ch = rest[i]
        buf.append(ch)
        i += 1
    if in_word and (blank_ok or buf):
        words.append("".join(buf))
    return words
