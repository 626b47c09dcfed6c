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

import ocisite  # noqa: F401  (the checkout, and site's folders under -S)

import oci
from oci import __version__
from oci.errors import INTERRUPTED_EXIT_CODE, InvalidInput, OciError, Unsupported, UsageError

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


DEFAULT_MAX_SIZE = 64 << 30  # --max-size of the commands that unpack layers or archives (unpack, build)
DEFAULT_MAX_ENTRIES = 2_000_000
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def size_argument(text: str) -> int:
    """A byte count with an optional K/M/G/T suffix."""
    import argparse

    unit = text[-1:].upper() if text[-1:].isalpha() else ""
    try:
        value = int(text[: len(text) - len(unit)]) * _UNITS[unit]
    except (KeyError, ValueError):
        raise argparse.ArgumentTypeError(f"invalid size {text!r} (examples: 500M, 8G)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}")
    return value


CONVERT: dict[str, Callable[[str], Any]] = {"str": str, "int": int, "float": float, "append": str,
                                            "bool": parse_bool}


class Options:
    """Parsed flags and positionals as attributes (what argparse's Namespace gives)."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)


class Flag:
    """One flag of a command, in the one table shape every command uses: the table makes the
    argparse parser (--help, errors, unusual spellings) and `quick_parse`, which reads the plain
    spellings without importing argparse.

    `kind` is switch (present or not), bool (Go's bool flag: `--flag` or `--flag=true|false`),
    str, int, float or append (a str, repeatable)."""

    __slots__ = ("names", "dest", "kind", "default", "help", "metavar", "choices")

    def __init__(self, names: tuple[str, ...], dest: str, kind: str, default: Any = None, help: str = "",
                 metavar: str | None = None, choices: tuple[str, ...] | None = None) -> None:
        self.names, self.dest, self.kind, self.default = names, dest, kind, default
        self.help, self.metavar, self.choices = help, metavar, choices


# The flags every command takes (Parser adds them), with one meaning everywhere.
COMMON_FLAGS = [
    Flag(("-q", "--quiet"), "quiet", "switch", False, "print no progress or warnings on stderr"),
    Flag(("--log-format",), "log_format", "str", "text",
         "messages on stderr as text lines or JSON lines (default: text)", choices=LOG_FORMATS),
    Flag(("--debug",), "debug", "switch", False, "print tracebacks and debug messages"),
]


def quick_parse(argv: Sequence[str], flags: list[Flag], positionals: list[tuple[str, Any]]) -> Options | None:
    """The arguments in their plain spellings (`--flag VALUE`, `--flag=VALUE`, `-f VALUE`,
    switches, one block of positionals), parsed without importing argparse; None for anything
    else, which argparse then decides (--help, --version, abbreviations, `--`, bundled short
    flags, values outside a flag's choices, errors). `positionals` are (dest, default or
    REQUIRED), in order."""
    by_name = {name: flag for flag in flags for name in flag.names}
    values: dict[str, Any] = {flag.dest: ([] if flag.kind == "append" else flag.default) for flag in flags}
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
        flag = by_name.get(name)
        if flag is None:
            return None
        if flag.kind == "switch" or (flag.kind == "bool" and not eq):
            if eq:
                return None
            values[flag.dest] = True
            continue
        if not eq:
            if i >= len(argv) or argv[i].startswith("-"):
                return None
            value = argv[i]
            i += 1
        try:
            converted = CONVERT[flag.kind](value)
        except ValueError:
            return None
        if flag.choices is not None and converted not in flag.choices:
            return None
        if flag.kind == "append":
            values[flag.dest].append(converted)
        else:
            values[flag.dest] = converted
    required = sum(1 for _, default in positionals if default is REQUIRED)
    if not required <= len(found) <= len(positionals):
        return None
    for index, (dest, default) in enumerate(positionals):
        values[dest] = found[index] if index < len(found) else default
    return Options(**values)


def add_flags(parser: argparse.ArgumentParser, flags: list[Flag]) -> None:
    """Add the flags of a table to an argparse parser (an ocicli.Parser reads bool flags as Go does)."""
    for flag in flags:
        if flag.kind == "switch":
            parser.add_argument(*flag.names, dest=flag.dest, action="store_true", help=flag.help)
        elif flag.kind == "bool":  # `--flag=VALUE`; a bare --flag is spelled out by Parser
            parser.add_argument(*flag.names, dest=flag.dest, type=parse_bool, default=flag.default,
                                metavar=flag.metavar, help=flag.help)
            go_bools: set[str] = getattr(parser, "go_bools", set())
            go_bools.update(flag.names)
        elif flag.kind == "append":
            parser.add_argument(*flag.names, dest=flag.dest, action="append", default=[], metavar=flag.metavar,
                                help=flag.help)
        else:
            parser.add_argument(*flag.names, dest=flag.dest, type=CONVERT[flag.kind], default=flag.default,
                                metavar=flag.metavar, choices=flag.choices, help=flag.help)


def parse(argv: list[str], flags: list[Flag], positionals: list[tuple[str, Any]],
          parser: Callable[[], argparse.ArgumentParser], common: bool = True) -> Any:
    """The arguments of a command made from a flag table: `quick_parse` for the plain
    spellings (with COMMON_FLAGS unless `common` is False), else the argparse parser `parser()` makes."""
    args = quick_parse(argv, COMMON_FLAGS + flags if common else flags, positionals)
    return args if args is not None else parser().parse_intermixed_args(argv)


def split_globals(args: Sequence[str], values: tuple[str, ...], switches: tuple[str, ...],
                  optional: dict[str, tuple[str, ...]] | None = None) -> tuple[dict[str, Any], str | None, list[str]]:
    """The flags before the verb of a command with verbs (`PROG [global flags] VERB ...`: oci-run as
    runc, oci-mon, oci-net's CNI-less verbs, ocikit as docker), read without argparse (oci-run's
    verbs are hot). Returns the flags given (`{name: value}`, switches `{name: True}`), the verb
    (None for -h/--help or none given, `--version` for -v/--version) and the verb's arguments.
    A flag of `optional` takes a value only when the next argument is one of the values it
    lists (oci-run's `--rootless [true|false|auto]`, as runc's). UsageError for anything else."""
    found: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("-"):
            return _checked(found), arg, list(args[i + 1:])
        name, eq, value = arg.partition("=")
        if name in values or (optional and name in optional):
            if not eq:
                if optional and name in optional and (i + 1 >= len(args) or args[i + 1] not in optional[name]):
                    found[name] = True
                    i += 1
                    continue
                if i + 1 >= len(args):
                    raise UsageError(f"flag needs an argument: {name}")
                value = args[i + 1]
                i += 1
            found[name] = value
        elif name in switches and not eq:
            found[name] = True
        elif arg in ("-h", "--help"):
            return _checked(found), None, []
        elif arg in ("-v", "--version"):
            return _checked(found), "--version", []
        else:
            raise UsageError(f"unknown global flag {arg}")
        i += 1
    return _checked(found), None, []


def _checked(found: dict[str, Any]) -> dict[str, Any]:
    if found.get("--log-format", "text") not in LOG_FORMATS:
        raise UsageError(f"--log-format: unknown format {found['--log-format']!r} (text or json)")
    return found


def _make_parser_class() -> type:
    import argparse

    class Parser(argparse.ArgumentParser):
        """argparse with ocikit's common flags, an examples section in --help, errors in one
        line, and bool flags read as Go reads them (`--flag` or `--flag=false`; see add_flags)."""

        def __init__(self, prog: str, description: str, examples: str = "", common: bool = True,
                     **kwargs: Any) -> None:
            epilog = f"examples:\n{examples.rstrip()}\n\n{EXIT_CODES}" if examples else EXIT_CODES
            super().__init__(prog=prog, description=description, epilog=epilog,
                             formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)
            self.go_bools: set[str] = set()
            self.add_argument("--version", action="version", version=f"{prog} (ocikit) {__version__}")
            if common:
                add_flags(self, COMMON_FLAGS)

        # one signature for argparse's two overloads (with and without a namespace)
        def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                             namespace: Any = None) -> Any:
            return super().parse_known_args(self._spelled_out(sys.argv[1:] if args is None else list(args)),
                                            namespace)

        def _spelled_out(self, args: list[str]) -> list[str]:
            """`--flag` -> `--flag=true` for bool flags (argparse would take the next argument as
            their value); what follows `--`, and the arguments after the first positional of a
            parser ending in a REMAINDER (a container's command), are left as they are."""
            if not self.go_bools:
                return args
            remainder = any(a.nargs == argparse.REMAINDER for a in self._actions if not a.option_strings)
            out, i = list(args), 0
            while i < len(out):
                arg = out[i]
                if arg == "--":
                    break
                if arg in self.go_bools:
                    out[i] = f"{arg}=true"
                elif arg.startswith("-") and "=" not in arg:
                    action = self._option_string_actions.get(arg)
                    i += 1 if action is not None and action.nargs != 0 else 0  # skip its value
                elif not arg.startswith("-") and remainder:
                    break
                i += 1
            return out

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


# How to reach a registry: oci-fetch, oci-push and oci-build take them all, ocikit's registry
# verbs --tls-verify and --cert-dir (`registry_flags`); `registry_options` reads them.
REGISTRY_FLAGS = [
    Flag(("--insecure",), "insecure", "switch", False,
         "talk plain HTTP to the registry (no TLS; loopback and localhost registries need no flag: plain HTTP is "
         "tried first there, TLS when the registry speaks it)"),
    Flag(("--tls-verify",), "tls_verify", "bool", True,
         "--tls-verify=false: TLS without checking the registry's certificate, plain HTTP when the registry does not "
         "speak TLS, as skopeo and podman (default: true)", metavar="BOOL"),
    Flag(("--cert-dir",), "cert_dir", "str", None,
         "trust the CA certificates DIR/*.crt and present the client certificate DIR/*.cert with DIR/*.key "
         "(default: $OCIKIT_CERT_DIR, else /etc/containers/certs.d/HOST and /etc/docker/certs.d/HOST; the system "
         "CAs and $SSL_CERT_FILE are trusted too)", metavar="DIR"),
    Flag(("--timeout",), "timeout", "float", 30.0,
         "give up on a connection that makes no progress for this long (default: 30)", metavar="SECONDS"),
    Flag(("--retries",), "retries", "int", 5, "retries after 408, 429, 5xx answers and connection errors (default: 5)",
         metavar="N"),
    Flag(("-j", "--jobs"), "jobs", "int", 4, "blobs transferred in parallel (default: 4)", metavar="N"),
]


def registry_flags(*names: str) -> list[Flag]:
    """The REGISTRY_FLAGS named (a command that takes only some of them)."""
    return [flag for flag in REGISTRY_FLAGS if flag.names[-1] in names]


def registry_options(args: Any) -> Any:  # -> oci.registry.http.Options
    """The transport options the registry flags ask for (those a command lacks take their
    defaults); registries.conf adds its insecure registries (oci.registry.registries_conf.resolve)."""
    from oci.errors import UsageError
    from oci.registry.http import Options

    values = {flag.dest: getattr(args, flag.dest, flag.default) for flag in REGISTRY_FLAGS}
    if values["timeout"] <= 0 or values["retries"] < 0 or values["jobs"] < 1:
        raise UsageError("--timeout must be positive, --retries at least 0, --jobs at least 1")
    if values["insecure"] and not values["tls_verify"]:
        raise UsageError("--insecure (plain HTTP) and --tls-verify=false (TLS unverified) exclude each other")
    return Options(insecure=values["insecure"], cert_dir=values["cert_dir"], timeout=values["timeout"],
                   retries=values["retries"], tls_verify=values["tls_verify"])


class ProgressBar:
    """One line on a terminal while blobs travel: bytes done of the blobs that travel (as they
    arrive or leave, block by block), and how many of those blobs are complete. `progress(quiet)`
    makes one where a terminal shows it."""

    def __init__(self, stream: Any = None) -> None:
        from _thread import allocate_lock

        self.stream = stream or sys.stderr
        self.total = 0
        self.count = 0
        self.done: dict[str, int] = {}
        self.sizes: dict[str, int] = {}
        self.lock = allocate_lock()
        self.last = 0.0

    def begin(self, blobs: Any) -> None:
        with self.lock:
            for blob in blobs:
                if str(blob.digest) not in self.sizes:
                    self.sizes[str(blob.digest)] = blob.size
                    self.total += blob.size
                    self.count += 1
        self.draw(force=True)

    def advance(self, blob: Any, done: int) -> None:
        with self.lock:
            self.done[str(blob.digest)] = done
        self.draw()

    def draw(self, force: bool = False) -> None:
        from time import monotonic

        now = monotonic()
        if not force and now - self.last < 0.1:
            return
        self.last = now
        with self.lock:
            done = sum(self.done.values())
            finished = sum(1 for key, d in self.done.items() if d >= self.sizes.get(key, 0))
        width = 30
        filled = int(width * done / self.total) if self.total else width
        self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done / 1e6:8.1f}/{self.total / 1e6:.1f} MB "
                          f"({finished}/{self.count} blobs) ")
        self.stream.flush()

    def finish(self) -> None:
        if self.count:
            self.draw(force=True)
            self.stream.write("\n")
            self.stream.flush()


def progress(quiet: bool) -> ProgressBar | None:
    """A progress bar for blobs in transit, on a terminal unless `quiet` (off a terminal the
    command prints a one-line summary instead)."""
    return ProgressBar() if not quiet and sys.stderr.isatty() else None


def run(prog: str, main: Callable[[list[str], Messages], int | None], argv: Sequence[str] | None = None, *,
        exit_at_once: bool = False, collect_at_start: bool = True) -> NoReturn:
    """Run a command's main: the library's warnings and debug messages go to its Messages
    (oci.log), OciErrors become error lines and exit codes, and so do operating-system errors
    no library code named (a full disk, a read-only file system...).

    The commands engines and pipelines start again and again (oci-run, oci-net, oci-fetch,
    oci-push, oci-mon) pass `exit_at_once`: once the output is flushed the process leaves with
    `os._exit` (`leave`), skipping the interpreter's teardown (freeing every module, ~2-4 ms);
    by then every file and lock is closed. With `collect_at_start` False, no garbage is
    collected while the command starts (imports make many objects and no garbage cycles) until
    `main` calls `collect_from_now()`, where its work begins."""
    if not collect_at_start:
        import gc

        gc.disable()
    args = list(sys.argv[1:] if argv is None else argv)
    messages = Messages(prog, _peek_log_format(args), debug="--debug" in args)
    oci.log_sink = messages
    try:
        code: Any = _outcome(main, args, messages)
    except SystemExit as leaving:  # argparse: --help, --version, usage errors
        if not exit_at_once:
            raise
        code = leaving.code
    if exit_at_once:
        leave(code)
    sys.exit(code)


def collect_from_now() -> None:
    """Turn garbage collection back on (see `run`'s `collect_at_start`): the command's work begins."""
    import gc

    gc.enable()


def leave(code: Any) -> NoReturn:
    """Exit with `code` (an int, None for 0, or a message for stderr and 1) without the
    interpreter's teardown, once stdout and stderr are flushed."""
    if code is not None and not isinstance(code, int):
        sys.stderr.write(f"{code}\n")
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 1
    os._exit(code or 0)


def _outcome(main: Callable[[list[str], Messages], int | None], args: list[str], messages: Messages) -> int:
    """main's exit code, or the code of what it raised (after one error line, and with --debug a traceback)."""
    try:
        return main(args, messages) or 0
    except OciError as err:
        for line in err.lines():
            messages.error(line, code=err.exit_code)
        _traceback(messages)
        return err.exit_code
    except KeyboardInterrupt:
        messages.error("interrupted")
        return INTERRUPTED_EXIT_CODE
    except BrokenPipeError:
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 1
    except OSError as err:  # what no library code named: a full disk, a read-only file system...
        messages.error(describe_os_error(err), code=1)
        _traceback(messages)
        return 1


def _traceback(messages: Messages) -> None:
    if messages.debug_on:
        import traceback

        traceback.print_exc()


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


def image_argument(text: str, what: str = "an image descriptor") -> tuple[Any, Any, Any]:
    """The image an IMAGE argument names, read the one way every command reads it: `-` for
    the descriptor a previous command printed (on stdin), else `[oci:]LAYOUT[:TAG|@DIGEST]`
    (oci.image.parse_image_argument). Returns the layout, the descriptor, and the document
    read from stdin (None for a layout path)."""
    from oci.image import from_pipe, open_image

    if text == "-":
        document = read_stdin_json(what)
        return (*from_pipe(document), document)
    return (*open_image(text), None)


def not_implemented(prog: str, description: str, examples: str, issue: str) -> Callable[[], NoReturn]:
    """A main for a command whose job is not built yet: --help works, anything else says so."""

    def main() -> NoReturn:
        def body(args: list[str], messages: Messages) -> int:
            parser = _parser_class()(prog, description, examples)
            parser.parse_known_args(args)
            raise Unsupported(f"not implemented yet (tracked in {issue})")

        run(prog, body)

    return main
