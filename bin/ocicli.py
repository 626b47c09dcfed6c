"""Conventions every ocikit command shares: flags, error lines, exit codes, stdout as data.

* stdout carries only data for the next command (one JSON document, or paths);
* stderr carries messages: errors as `PROG: message` lines, or JSON lines with
  `--log-format json`;
* exit codes come from the exception hierarchy in `oci.errors`;
* `--help` shows examples, `--version` the ocikit version.

Commands start often: argparse (with the gettext, locale and shutil it pulls in), json and
typing are imported on first use, not with this module. `Parser` is made on first access.
"""

from __future__ import annotations

import os
import sys

import ocisite  # noqa: F401  (site's folders under -S)

_ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
if os.path.isfile(os.path.join(_ROOT, "oci", "__init__.py")) and _ROOT not in sys.path:
    sys.path.insert(1, _ROOT)  # running from a checkout

from oci import __version__  # noqa: E402
from oci.errors import INTERRUPTED_EXIT_CODE, InvalidInput, OciError, Unsupported  # noqa: E402

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any, Callable, NoReturn, Sequence

LOG_FORMATS = ("text", "json")
REQUIRED = object()  # the default of a positional that must be given
def parse_bool(text: str) -> bool:
    """`true` or `false` (also 1/0, yes/no, on/off), as Go's bool flags read `--flag=VALUE`."""
    value = text.strip().lower()
    if value in ("true", "1", "yes", "on", "t"):
        return True
    if value in ("false", "0", "no", "off", "f"):
        return False
    raise ValueError(f"invalid boolean {text!r}: expected true or false")


CONVERT: dict[str, Callable[[str], Any]] = {"str": str, "int": int, "float": float, "append": str,
                                            "bool": parse_bool}


class Options:
    """Parsed flags and positionals as attributes (what argparse's Namespace gives)."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)


def quick_parse(argv: Sequence[str], flags: list[tuple], positionals: list[tuple[str, Any]]) -> Options | None:
    """The arguments in their plain spellings (`--flag VALUE`, `--flag=VALUE`, `-f VALUE`,
    switches, one block of positionals), parsed without importing argparse; None for anything
    else, which argparse then decides (--help, --version, abbreviations, `--`, bundled short
    flags, errors). `flags` are tuples (names, dest, kind, default, ...) with kind switch,
    bool (`--flag` or `--flag=true|false`, as Go's bool flags), append, str, int or float;
    `positionals` are (dest, default or REQUIRED), in order."""
    by_name = {name: (dest, kind) for names, dest, kind, *_ in flags for name in names}
    values: dict[str, Any] = {dest: ([] if kind == "append" else default) for _, dest, kind, default, *_ in flags}
    found: list[str] = []
    block = 0  # 0: before the positionals, 1: inside them, 2: after them
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "-" or not arg.startswith("-"):
            if block == 2:
                return None
            block = 1
            found.append(arg)
            continue
        block = 2 if block else 0
        name, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name not in by_name:
            return None
        dest, kind = by_name[name]
        if kind == "switch" or (kind == "bool" and not eq):
            if eq:
                return None
            values[dest] = True
            continue
        if not eq:
            if i >= len(argv) or argv[i].startswith("-"):
                return None
            value = argv[i]
            i += 1
        try:
            converted = CONVERT[kind](value)
        except ValueError:
            return None
        if kind == "append":
            values[dest].append(converted)
        else:
            values[dest] = converted
    required = sum(1 for _, default in positionals if default is REQUIRED)
    if not required <= len(found) <= len(positionals):
        return None
    for index, (dest, default) in enumerate(positionals):
        values[dest] = found[index] if index < len(found) else default
    return Options(**values)


def bool_flags_spelled_out(argv: list[str], names: set[str]) -> list[str]:
    """`--flag` -> `--flag=true` for the bool flags `names`, so that argparse (whose optional
    value would take the next argument) reads them as Go does."""
    return [f"{arg}=true" if arg in names else arg for arg in argv]


def _make_parser_class() -> type:
    import argparse

    class Parser(argparse.ArgumentParser):
        """argparse with ocikit's common flags and an examples section in --help."""

        def __init__(self, prog: str, description: str, examples: str = "", common: bool = True,
                     **kwargs: Any) -> None:
            epilog = f"examples:\n{examples.rstrip()}\n\n{EXIT_CODES}" if examples else EXIT_CODES
            super().__init__(prog=prog, description=description, epilog=epilog,
                             formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)
            self.add_argument("--version", action="version", version=f"{prog} (ocikit) {__version__}")
            if common:
                add_common(self)

        def error(self, message: str) -> NoReturn:
            sys.stderr.write(f"{self.prog}: {message} (see --help)\n")
            sys.exit(2)

    Parser.__module__ = __name__
    return Parser


def _parser_class() -> type:
    parser_class = globals().get("Parser")
    if parser_class is None:
        parser_class = globals()["Parser"] = _make_parser_class()
    return parser_class


def __getattr__(name: str) -> Any:
    """`Parser` (argparse with ocikit's common flags), made on first access."""
    if name == "Parser":
        return _parser_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


EXIT_CODES = """exit codes:
  0 success            1 failure             2 usage or invalid input
  3 not found          4 integrity error     5 registry or network error
  6 auth refused       7 conflict or locked  8 not implemented or unsupported
  130 interrupted"""


def add_common(parser: argparse.ArgumentParser) -> None:
    """The flags every command takes, with one meaning everywhere."""
    parser.add_argument("-q", "--quiet", action="store_true", help="print no progress or warnings on stderr")
    parser.add_argument("--log-format", choices=LOG_FORMATS, default="text",
                        help="messages on stderr as text lines or JSON lines (default: text)")
    parser.add_argument("--debug", action="store_true", help="print tracebacks and debug messages")


class Messages:
    """Writes messages to stderr in the chosen format."""

    def __init__(self, prog: str, log_format: str = "text", quiet: bool = False, debug: bool = False) -> None:
        self.prog, self.log_format, self.quiet, self.debug_on = prog, log_format, quiet, debug

    def _write(self, level: str, message: str, **fields: Any) -> None:
        if self.log_format == "json":
            import json

            line = json.dumps({"level": level, "msg": message, "prog": self.prog, **fields})
        else:
            line = f"{self.prog}: {'' if level in ('error', 'info') else level + ': '}{message}"
        sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def error(self, message: str, **fields: Any) -> None:
        self._write("error", message, **fields)

    def warn(self, message: str) -> None:
        if not self.quiet:
            self._write("warning", message)

    def info(self, message: str) -> None:
        if not self.quiet:
            self._write("info", message)

    def debug(self, message: str) -> None:
        if self.debug_on:
            self._write("debug", message)


def emit(document: Any) -> None:
    """Write one JSON document to stdout, for the next command in a pipeline."""
    from oci.jsonout import dumps

    sys.stdout.write(dumps(document, indent=2) + "\n")
    sys.stdout.flush()


def run(prog: str, main: Callable[[list[str], Messages], int | None], argv: Sequence[str] | None = None) -> NoReturn:
    """Run a command's main, turning OciErrors into error lines and exit codes."""
    args = list(sys.argv[1:] if argv is None else argv)
    messages = Messages(prog, _peek_log_format(args), debug="--debug" in args)
    try:
        code = main(args, messages) or 0
    except OciError as err:
        for line in err.lines():
            messages.error(line, code=err.exit_code)
        if messages.debug_on:
            import traceback

            traceback.print_exc()
        code = err.exit_code
    except KeyboardInterrupt:
        messages.error("interrupted")
        code = INTERRUPTED_EXIT_CODE
    except BrokenPipeError:
        code = 1
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
    except OSError as err:  # what no library code named: a full disk, a read-only file system...
        messages.error(describe_os_error(err), code=1)
        if messages.debug_on:
            import traceback

            traceback.print_exc()
        code = 1
    sys.exit(code)


def describe_os_error(err: OSError) -> str:
    """`FILE: no space left on device`: an operating-system error as one line."""
    reason = err.strerror or str(err) or type(err).__name__
    reason = reason[:1].lower() + reason[1:]
    return f"{err.filename}: {reason}" if err.filename else reason


def _peek_log_format(args: list[str]) -> str:
    for i, arg in enumerate(args):
        if arg.startswith("--log-format="):
            return arg.split("=", 1)[1] if arg.split("=", 1)[1] in LOG_FORMATS else "text"
        if arg == "--log-format" and i + 1 < len(args) and args[i + 1] in LOG_FORMATS:
            return args[i + 1]
    return "text"


def read_stdin_json(what: str) -> Any:
    """Read one JSON document from stdin (for `-` arguments)."""
    from oci import schema

    if sys.stdin is None or sys.stdin.isatty():
        raise InvalidInput(f"expected {what} as JSON on stdin")
    return schema.parse(sys.stdin.buffer.read(), "<stdin>")


def not_implemented(prog: str, description: str, examples: str, issue: str) -> Callable[[], NoReturn]:
    """A main for a command whose job is not built yet: --help works, anything else says so."""

    def main() -> NoReturn:
        def body(args: list[str], messages: Messages) -> int:
            parser = _parser_class()(prog, description, examples)
            parser.parse_known_args(args)
            raise Unsupported(f"not implemented yet (tracked in {issue})")

        run(prog, body)

    return main
