#!/usr/bin/env python3
"""oci-run: an OCI runtime with a runc-compatible command line.

Global flags come before the verb; each verb builds only its own parser and imports only
what it needs, because engines call the runtime many times per container.
"""

from __future__ import annotations

import os
import sys

import ocicli

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

PROG = "oci-run"
DESCRIPTION = "Create and run containers from OCI runtime bundles (runc-compatible)."
EXAMPLES = """\
  # bundles made by oci-bundle: ./hello prints hello, ./bundle's process keeps running
  oci-run run --bundle ./hello hello          # in the foreground; exits with the container's status
  oci-run create -b ./bundle demo && oci-run start demo
  oci-run state demo
  oci-run list --format json
  oci-run exec demo ps                        # another process in the container
  oci-run ps demo                             # `ps -ef` lines of the container's processes
  oci-run update --memory 256m --pids-limit 100 demo
  oci-run events --stats demo                 # one JSON stats object
  oci-run pause demo && oci-run resume demo
  oci-run kill demo TERM
  oci-run delete --force demo
  mkdir -p new && oci-run spec --bundle ./new # a default config.json (for a root filesystem in ./new/rootfs)
  oci-run features"""
VERBS = {
    "create": "create a container (its init waits for start)",
    "start": "run the user process of a created container",
    "state": "print the state of a container as JSON",
    "kill": "send a signal to the container's init (or, with --all, every process)",
    "delete": "delete a stopped (or, with --force, any) container",
    "run": "create and start a container; exit with its status",
    "exec": "run another process in a running container; exit with its status",
    "list": "list containers",
    "spec": "write a default config.json",
    "features": "print the implemented features as runtime-spec features JSON",
    "pause": "freeze every process of a container (cgroup freezer)",
    "resume": "thaw a paused container",
    "ps": "list the processes of a container (ps output, or --format json: the pids)",
    "update": "change a live container's memory and pids limits",
    "events": "print a container's cgroup statistics as JSON (--stats: once; else every --interval)",
}
GLOBAL_VALUE_FLAGS = ("--root", "--log", "--log-format", "--criu")
GLOBAL_SWITCHES = ("--debug", "--systemd-cgroup", "-q", "--quiet")


class Globals:
    """The flags before the verb, and the notes a verb leaves for --log.

    `notes` collects what the runtime ignored in documents other programs wrote (unknown
    properties, known ones that do not apply here): written to --log as warnings, and to stderr
    with --debug, once the verb is done.
    """

    def __init__(self) -> None:
        self.root = "/run/oci-run"
        self.log: str | None = None
        self.log_format = "text"
        self.debug = False
        self.quiet = False
        self.notes: list[str] = []

    def store(self) -> Any:
        """The state store under --root."""
        from oci.runtime.state import StateStore

        return StateStore(self.root)


def split_globals(args: list[str]) -> tuple[Globals, str | None, list[str]]:
    """(global flags, verb, the verb's arguments); raises UsageError on an unknown global flag."""
    found, verb, rest = ocicli.split_globals(args, GLOBAL_VALUE_FLAGS, GLOBAL_SWITCHES,
                                             optional={"--rootless": ("true", "false", "auto")})
    g = Globals()
    g.root = found.get("--root", g.root)
    g.log = found.get("--log")
    g.log_format = found.get("--log-format", "text")
    g.debug = "--debug" in found
    g.quiet = "-q" in found or "--quiet" in found
    return g, verb, rest


# The flags of the verbs engines call on every container, in ocicli's table shape: one table serves
# argparse (help, errors) and ocicli.quick_parse (the common case without argparse).
Flag = ocicli.Flag
CREATE_FLAGS = [
    Flag(("-b", "--bundle"), "bundle", "str", ".", "the bundle directory (default: current directory)"),
    Flag(("--pid-file",), "pid_file", "str", None, "write the init's pid to this file"),
    Flag(("--console-socket",), "console_socket", "str", None,
         "AF_UNIX socket that receives the pty master (with terminal)"),
    Flag(("--no-pivot",), "no_pivot", "switch", False, "move the rootfs to / and chroot, no pivot_root"),
    Flag(("--no-new-keyring",), "no_new_keyring", "switch", False, "accepted: oci-run never creates a session keyring"),
    Flag(("--preserve-fds",), "preserve_fds", "int", 0, "pass N fds beyond stdio (3..3+N-1)"),
]
POSITIONALS = [("id", ocicli.REQUIRED)]
KILL_POSITIONALS = [("id", ocicli.REQUIRED), ("signal", "SIGTERM")]
UPDATE_FLAGS = [
    Flag(("-r", "--resources"), "resources", "str", None,
         "a LinuxResources JSON document (- for stdin); no other flag with it"),
    Flag(("--memory",), "memory", "str", None, "memory limit in bytes (k, m, g suffixes; -1: unlimited)"),
    Flag(("--memory-reservation",), "memory_reservation", "str", None, "memory soft limit in bytes (k, m, g suffixes)"),
    Flag(("--memory-swap",), "memory_swap", "str", None,
         "memory+swap limit in bytes (k, m, g suffixes; -1: unlimited)"),
    Flag(("--pids-limit",), "pids_limit", "int", None, "maximum number of processes (-1: unlimited)"),
    Flag(("--cpu-share",), "cpu_share", "int", None, "CPU shares (relative weight; cpu.weight on cgroup v2)"),
    Flag(("--cpu-quota",), "cpu_quota", "int", None, "CFS quota in microseconds per period (-1: unlimited)"),
    Flag(("--cpu-period",), "cpu_period", "int", None, "CFS period in microseconds"),
    Flag(("--cpuset-cpus",), "cpuset_cpus", "str", None, "CPUs the container may use (0-2,4)"),
    Flag(("--cpuset-mems",), "cpuset_mems", "str", None, "memory nodes the container may use (0-1)"),
    Flag(("--cpu-rt-period",), "cpu_rt_period", "int", None, "realtime period in microseconds (cgroup v1)"),
    Flag(("--cpu-rt-runtime",), "cpu_rt_runtime", "int", None,
         "realtime runtime in microseconds per period (cgroup v1)"),
    Flag(("--blkio-weight",), "blkio_weight", "int", None, "block I/O weight (10-1000)"),
    Flag(("--kernel-memory",), "kernel_memory", "str", None, "accepted and ignored, as runc ignores it"),
    Flag(("--kernel-memory-tcp",), "kernel_memory_tcp", "str", None, "accepted and ignored, as runc ignores it"),
]
VERB_FLAGS = {
    "create": CREATE_FLAGS,
    "run": [*CREATE_FLAGS,
            Flag(("-d", "--detach"), "detach", "switch", False, "return once the container started"),
            Flag(("--keep",), "keep", "switch", False, "keep the container's state after it exits")],
    "start": [],
    "state": [],
    "kill": [Flag(("-a", "--all"), "all", "switch", False, "signal every process in the container")],
    "delete": [Flag(("-f", "--force"), "force", "switch", False, "kill a running container first")],
    "pause": [],
    "resume": [],
    "ps": [Flag(("-f", "--format"), "format", "str", "table", "table (ps output) or json (the pids as a JSON array)")],
    "events": [Flag(("--stats",), "stats", "switch", False, "print the container's stats once and exit"),
               Flag(("--interval",), "interval", "str", "5s", "time between stats (5s, 500ms, 1m; default: 5s)")],
    "update": UPDATE_FLAGS,
}


def quick_parse(verb: str, args: list[str]) -> ocicli.Options | None:
    """Parse the plain forms of VERB_FLAGS verbs without argparse; None for anything else (argparse decides)."""
    flags = VERB_FLAGS.get(verb)
    if flags is None:
        return None
    return ocicli.quick_parse(args, flags, KILL_POSITIONALS if verb == "kill" else POSITIONALS)


def verb_parser(verb: str) -> ocicli.Parser:
    parser = ocicli.Parser(f"{PROG} {verb}", VERBS[verb], common=False)
    ocicli.add_flags(parser, VERB_FLAGS.get(verb, []))
    if verb == "exec":
        parser.add_argument("-p", "--process", help="a process.json (the config's process object) to run")
        parser.add_argument("--console-socket", help="AF_UNIX socket that receives the pty master (with --tty)")
        parser.add_argument("-t", "--tty", action="store_true", help="allocate a terminal")
        parser.add_argument("--cwd", help="working directory inside the container")
        parser.add_argument("-e", "--env", action="append", default=[], help="KEY=VALUE, repeatable")
        parser.add_argument("-u", "--user", help="UID[:GID]")
        parser.add_argument("-g", "--additional-gids", action="append", type=int, default=[])
        parser.add_argument("-c", "--cap", action="append", default=[], help="add a capability, repeatable")
        parser.add_argument("--no-new-privs", action="store_true")
        parser.add_argument("-d", "--detach", action="store_true", help="return once the process started")
        parser.add_argument("--pid-file", help="write the process's pid to this file")
        parser.add_argument("--preserve-fds", type=int, default=0, help="pass N fds beyond stdio (3..3+N-1)")
    if verb == "list":
        parser.add_argument("-f", "--format", choices=("table", "json"), default="table")
        parser.add_argument("-q", "--quiet", action="store_true", help="print the ids only")
    if verb == "spec":
        parser.add_argument("-b", "--bundle", default=".", help="where to write config.json")
        parser.add_argument("--rootless", action="store_true", help="a config for an unprivileged user")
    if verb == "update":
        _refused_update_flags(parser)
    if verb not in ("list", "spec", "features"):
        parser.add_argument("id", metavar="CONTAINER_ID")
    if verb == "kill":
        parser.add_argument("signal", nargs="?", default="SIGTERM", help="name or number (default: SIGTERM)")
    if verb == "exec":
        import argparse

        parser.add_argument("command", nargs=argparse.REMAINDER, help="the program and its arguments (no --process)")
    if verb == "ps":
        import argparse

        parser.add_argument("ps_args", nargs=argparse.REMAINDER, metavar="PS_ARGS",
                            help="arguments for ps(1) (default: -ef); the lines of the container's pids are kept")
    return parser


# runc's update flags for resources oci-run does not implement: refused by name.
UPDATE_REFUSED = ("--l3-cache-schema", "--mem-bw-schema", "--cpu-idle", "--cpu-burst")


def _refused_update_flags(parser: ocicli.Parser) -> None:
    import argparse

    for flag in UPDATE_REFUSED:
        parser.add_argument(flag, dest="refused_" + flag[2:].replace("-", "_"), help=argparse.SUPPRESS)


def main(args: list[str] | None = None) -> None:
    ocicli.run(PROG, _main, args, exit_at_once=True)  # engines run us many times per container


def _main(args: list[str], messages: ocicli.Messages) -> int:
    from oci.errors import OciError

    g, verb, rest = split_globals(args)
    if verb is None:
        verbs = "\n".join(f"  {name:9s} {text}" for name, text in VERBS.items())
        top = ocicli.Parser(PROG, f"{DESCRIPTION}\n\nverbs (`oci-run VERB --help` for each):\n{verbs}", EXAMPLES,
                            usage="oci-run [global flags] VERB [flags] [CONTAINER_ID ...]")
        top.add_argument("--root", default="/run/oci-run", help="state directory (default: /run/oci-run)")
        top.add_argument("--log", help="also append errors and warnings to this file (in --log-format, as runc)")
        top.add_argument("--systemd-cgroup", action="store_true",
                         help="accepted: a slice:prefix:name cgroupsPath maps to a cgroupfs path")
        top.add_argument("--rootless", help="accepted for compatibility (true, false, auto)")
        top.print_help()
        return 0 if any(a in ("-h", "--help") for a in args) else 2
    if verb == "--version":
        from oci import RUNTIME_SPEC_VERSION, __version__

        sys.stdout.write(f"{PROG} version {__version__} (ocikit)\nspec: {RUNTIME_SPEC_VERSION}\n")
        return 0
    if verb not in VERBS:
        messages.error(f"unknown command {verb!r} (one of: {', '.join(VERBS)})")
        return 2
    messages.log_format = g.log_format
    messages.debug_on = g.debug
    messages.quiet = g.quiet
    opts = quick_parse(verb, rest) or verb_parser(verb).parse_args(rest)
    try:
        handler = HANDLERS.get(verb)
        if handler is None:
            import oci_run_verbs

            handler = getattr(oci_run_verbs, f"cmd_{verb.replace('-', '_')}")
        return handler(g, opts, messages) or 0
    except OciError as err:
        _log(g, "error", "; ".join(err.lines()))
        raise
    except (KeyboardInterrupt, BrokenPipeError, SystemExit):
        raise
    except BaseException as err:  # noqa: BLE001 - never a traceback: one line, in --log too, exit 1
        if g.debug:
            import traceback

            traceback.print_exc()
        message = f"{verb}: {_describe(err)}"
        _log(g, "error", message)
        raise OciError(message) from None
    finally:
        _flush_notes(g, messages)


def _describe(err: BaseException) -> str:
    """An unexpected exception in one line: its message (OSError: with its errno's text and the file)."""
    if isinstance(err, OSError) and err.strerror:
        where = f": {err.filename}" if err.filename else ""
        return f"{err.strerror}{where}"
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _flush_notes(g: Globals, messages: ocicli.Messages) -> None:
    """What was ignored: warnings in --log, and on stderr with --debug."""
    for note in g.notes:
        _log(g, "warning", note)
        messages.debug(note)
    g.notes.clear()


def _log(g: Globals, level: str, message: str) -> None:
    """One line in --log, in runc's shape: logrus JSON (`{"level","msg","time"}`) or logrus text."""
    if not g.log:
        return
    import time

    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if g.log_format == "json":
        from oci import jsonout

        line = jsonout.dumps({"level": level, "msg": message, "time": stamp}, separators=(",", ":"))
    else:
        escaped = message.replace("\\", "\\\\").replace('"', '\\"')
        line = f'time="{stamp}" level={level} msg="{escaped}"'
    try:
        fd = os.open(g.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)
    except OSError:
        pass


def _create_options(g: Globals, opts: Any, **extra: Any) -> Any:
    from oci.runtime.lifecycle import CreateOptions

    return CreateOptions(pid_file=opts.pid_file, console_socket=opts.console_socket, no_pivot=opts.no_pivot,
                         preserve_fds=opts.preserve_fds, notes=g.notes, **extra)


def cmd_create(g: Globals, opts: Any, messages: ocicli.Messages) -> int:
    from oci.runtime import lifecycle

    lifecycle.create(g.store(), opts.id, opts.bundle, _create_options(g, opts))
    return 0


def cmd_start(g: Globals, opts: Any, messages: ocicli.Messages) -> int:
    from oci.runtime import lifecycle

    lifecycle.start(g.store(), opts.id)
    return 0


def cmd_state(g: Globals, opts: Any, messages: ocicli.Messages) -> int:
    from oci import jsonout

    sys.stdout.write(jsonout.dumps(g.store().load(opts.id).runc_state()) + "\n")
    return 0


def cmd_kill(g: Globals, opts: Any, messages: ocicli.Messages) -> int:
    from oci.runtime import lifecycle

    store = g.store()
    signum = lifecycle.parse_signal(opts.signal)
    lifecycle.kill(store, opts.id, signum, opts.all)
    if signum == 9 and _ever_paused(store, opts.id):
        from oci.runtime import control

        control.thaw_if_paused(store, opts.id)  # a frozen process acts on SIGKILL once thawed
    return 0


def _ever_paused(store: Any, container_id: str) -> bool:
    """Whether `pause` ever ran on the container: one stat spares kill and delete the freezer otherwise."""
    from oci.errors import OciError
    from oci.runtime.state import FREEZER_LINK

    try:
        return os.path.exists(os.path.join(store.path(container_id), FREEZER_LINK))
    except OciError:
        return False


def cmd_delete(g: Globals, opts: Any, messages: ocicli.Messages) -> int:
    from oci.errors import NotFound
    from oci.runtime import lifecycle

    store = g.store()
    try:
        if opts.force and _ever_paused(store, opts.id):
            from oci.runtime import control

            control.kill_paused(store, opts.id)
        lifecycle.delete(store, opts.id, opts.force)
    except NotFound:
        if not opts.force:
            raise
        store.remove(opts.id)  # like runc: --force on a missing container only clears leftovers
    return 0


def cmd_run(g: Globals, opts: Any, messages: ocicli.Messages) -> int:
    import _socket

    from oci.runtime import lifecycle

    store = g.store()
    direct_tty = not opts.detach and opts.console_socket is None
    pair = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM) if direct_tty else None
    create_opts = _create_options(g, opts, subreaper=not opts.detach,
                                  console_fd=pair[1].fileno() if pair else None)
    container = lifecycle.create(store, opts.id, opts.bundle, create_opts)
    master = None
    if pair is not None:
        ours, theirs = pair
        theirs.close()
        if container.terminal:
            from oci.linux import terminal

            master = terminal.receive_master(ours)
        ours.close()
    try:
        lifecycle.start(store, opts.id)
    except BaseException:
        lifecycle.delete(store, opts.id, force=True)
        raise
    if opts.detach:
        return 0

    status = lifecycle.wait_in_foreground(container.pid, master)
    if not opts.keep:
        lifecycle.delete(store, opts.id, force=True)
    return status


# The verbs on a container's start path; the others live in oci_run_verbs, imported for them only.
HANDLERS: dict[str, Callable[[Globals, Any, ocicli.Messages], int]] = {
    "create": cmd_create, "start": cmd_start, "state": cmd_state, "kill": cmd_kill, "delete": cmd_delete,
    "run": cmd_run,
}

if __name__ == "__main__":
    main()
