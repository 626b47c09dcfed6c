#!/usr/bin/env python3
"""oci-mon: watch over detached containers (logs, exit codes, restart policies, stop, attach, events).

The role of containerd-shim and conmon, for any runc-compatible runtime. One monitor process per
state root watches every container (oci.monitor.daemon); this command asks it to act, and reads
records, logs and events straight from the root (oci.monitor.client).

`oci-mon run` (detached, the monitor already running) is a hot path (README, Performance): it sits
on every detached container's start path, which issue 16 holds within 1.2x of conmon + runc. So
this module imports at its top only what `run` needs (os, sys, ocicli); `run` reads its flags
with ocicli.quick_parse (no argparse) and sends them to the monitor, which reads config.json and
checks them (oci.monitor.runspec); every other verb imports what it uses in its own function.
tests/unit/test_import_budget.py holds `run` to its allowlist (OCI_MON_RUN).
"""

from __future__ import annotations

import os
import sys

import ocicli

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PROG = "oci-mon"
DESCRIPTION = "Run containers detached through a runc-compatible runtime, and watch over them."
EXAMPLES = """\
  # bundles made by oci-bundle: ./web's process (a web server) keeps running, ./shell's is sh (-i -t)
  oci-mon run --bundle ./web --restart on-failure:3 web      # prints {"id": "web", "pid": ...}
  oci-mon run --runtime runc --bundle ./web --log-max-size 10m --log-max-files 3 web2
  oci-mon ps -a
  oci-mon logs -f --tail 10 web                               # follows until ctrl-c
  oci-mon run -i -t --bundle ./shell sh && oci-mon attach sh  # detach with ctrl-p ctrl-q
  oci-mon stop -t 5 web && oci-mon wait web
  oci-mon events --since 10m --filter event=die               # follows until ctrl-c
  oci-mon rm -f web web2 sh"""
VERBS = {
    "run": "create and start a container detached; print its ID and pid as JSON",
    "ps": "list containers (a table on a terminal, JSON otherwise)",
    "logs": "print a container's log (-f: follow it)",
    "wait": "wait until a container stops; print its exit code",
    "stop": "stop a container: its stop signal, then SIGKILL after -t seconds",
    "start": "start a stopped container again",
    "restart": "stop a container, then start it again",
    "kill": "send a signal to a container's init (default SIGKILL)",
    "attach": "attach the terminal to a running container (detach: ctrl-p ctrl-q)",
    "rm": "remove a stopped (or, with -f, any) container: runtime delete, record and log",
    "events": "print container events as JSON lines",
    "inspect": "print a container's record as JSON",
    "monitor": "run the monitor in the foreground (for an init system)",
}
GLOBAL_VALUE_FLAGS = ("--root", "--log-format")
GLOBAL_SWITCHES = ("--debug", "-q", "--quiet")


class Globals:
    def __init__(self) -> None:
        self.root: str | None = None
        self.log_format = "text"
        self.debug = False
        self.quiet = False

    def store(self) -> Any:
        from oci.monitor.paths import Root

        return Root(self.root)


def split_globals(args: list[str]) -> tuple[Globals, str | None, list[str]]:
    found, verb, rest = ocicli.split_globals(args, GLOBAL_VALUE_FLAGS, GLOBAL_SWITCHES)
    g = Globals()
    g.root = found.get("--root")
    g.log_format = found.get("--log-format", "text")
    g.debug = "--debug" in found
    g.quiet = "-q" in found or "--quiet" in found
    return g, verb, rest


# The flags of `run`, the verb on a container's start path, in ocicli's table shape: one table serves
# argparse (help, errors) and ocicli.quick_parse (the plain spellings, without importing argparse).
Flag = ocicli.Flag
RUN_FLAGS = [
    Flag(("--runtime",), "runtime", "str", "oci-run",
         "oci-run, runc, crun, or the path of a runc-compatible runtime (default: oci-run)"),
    Flag(("--runtime-root",), "runtime_root", "str", None, "the runtime's --root (default: its own)"),
    Flag(("-b", "--bundle"), "bundle", "str", ".", "the bundle directory (default: current directory)"),
    Flag(("--name",), "name", "str", None, "a name for the container (default: its ID)"),
    Flag(("--log-path",), "log_path", "str", None, "where its CRI log goes (default: ROOT/containers/ID/ctr.log)"),
    Flag(("--log-max-size",), "log_max_size", "str", None, "rotate the log at this size (10m, 512k; default: never)"),
    Flag(("--log-max-files",), "log_max_files", "int", 1,
         "log files kept, the current one included (default: 1: a full log starts again)"),
    Flag(("--restart",), "restart", "str", "no", "no, on-failure[:N], always or unless-stopped (default: no)"),
    Flag(("-i", "--interactive"), "interactive", "switch", False, "keep stdin open for attach"),
    Flag(("-t", "--tty"), "tty", "switch", False, "the bundle's process has a terminal (the monitor holds it)"),
    Flag(("--stop-signal",), "stop_signal", "str", None, "the signal `stop` sends first (default: the bundle's "
         "org.opencontainers.image.stopSignal annotation, else SIGTERM)"),
    Flag(("--stop-timeout",), "stop_timeout", "int", 10, "seconds `stop` waits before SIGKILL (default: 10)"),
    Flag(("--rm",), "rm", "switch", False, "remove it once it has ended (no restart policy with it)"),
    Flag(("-a", "--attach"), "attach", "switch", False, "attach once it runs (as `attach` does)"),
    Flag(("--detach-keys",), "detach_keys", "str", None, "with --attach: keys that detach (default: ctrl-p,ctrl-q)"),
]


def verb_parser(verb: str) -> Any:
    if verb == "run":
        parser = ocicli.Parser(f"{PROG} run", VERBS["run"], EXAMPLES)
        ocicli.add_flags(parser, RUN_FLAGS)
        parser.add_argument("id", metavar="CONTAINER_ID")
        return parser
    parser = ocicli.Parser(f"{PROG} {verb}", VERBS[verb])
    add = parser.add_argument
    if verb == "ps":
        add("-a", "--all", action="store_true", help="stopped containers too")
        add("--format", choices=("table", "json"), help="default: a table on a terminal, JSON otherwise")
        add("--ids", action="store_true", help="print the IDs only")
    elif verb == "logs":
        add("-f", "--follow", action="store_true", help="go on printing what it writes until it stops")
        add("--since", metavar="TIME", help="lines from then on (RFC 3339, Unix seconds, or a duration: 10m)")
        add("--until", metavar="TIME", help="lines before then")
        add("-n", "--tail", metavar="N", default="all", help="the last N lines (default: all)")
        add("-t", "--timestamps", action="store_true", help="show each line's time")
        add("id", metavar="CONTAINER")
    elif verb in ("stop", "restart"):
        add("-t", "--time", type=int, default=None, metavar="SECONDS",
            help="seconds before SIGKILL (default: the container's --stop-timeout)")
        add("ids", nargs="+", metavar="CONTAINER")
    elif verb == "kill":
        add("-s", "--signal", default=None, help="the signal (default: KILL)")
        add("id", metavar="CONTAINER")
        add("sig", nargs="?", default=None, metavar="SIGNAL", help="the signal, as runc takes it after the ID")
    elif verb == "attach":
        add("--detach-keys", default=None, help="keys that detach (default: ctrl-p,ctrl-q)")
        add("--no-stdin", action="store_true", help="do not send stdin")
        add("--sig-proxy", default="true", choices=("true", "false"),
            help="forward signals to the container (not with a terminal; default: true)")
        add("id", metavar="CONTAINER")
    elif verb == "rm":
        add("-f", "--force", action="store_true", help="kill it first if it runs")
        add("ids", nargs="+", metavar="CONTAINER")
    elif verb == "events":
        add("--since", metavar="TIME", help="also past events from then on")
        add("--until", metavar="TIME", help="stop at then")
        add("--filter", action="append", default=[], metavar="KEY=VALUE", help="container=ID|NAME, event=ACTION")
    elif verb in ("wait", "start"):
        add("ids", nargs="+", metavar="CONTAINER")
    elif verb == "inspect":
        add("id", metavar="CONTAINER")
    elif verb == "monitor":
        add("--idle-timeout", type=float, default=0, metavar="SECONDS",
            help="leave after this long with no container to watch (default: 0, never)")
    return parser


def main(args: list[str] | None = None) -> None:
    ocicli.run(PROG, _main, args, exit_at_once=True)  # `run` is on a container's start path


def _main(args: list[str], messages: ocicli.Messages) -> int:
    g, verb, rest = split_globals(args)
    if verb is None:
        verbs = "\n".join(f"  {name:8s} {text}" for name, text in VERBS.items())
        top = ocicli.Parser(PROG, f"{DESCRIPTION}\n\nverbs (`oci-mon VERB --help` for each):\n{verbs}", EXAMPLES,
                            usage="oci-mon [--root DIR] VERB [flags] ...")
        top.add_argument("--root", help="state root (default: $OCI_MON_ROOT, else /var/lib/oci-mon)")
        top.print_help()
        return 0 if any(a in ("-h", "--help") for a in args) else 2
    if verb == "--version":
        from oci import __version__

        sys.stdout.write(f"{PROG} (ocikit) {__version__}\n")
        return 0
    if verb not in VERBS:
        messages.error(f"unknown command {verb!r} (one of: {', '.join(VERBS)})")
        return 2
    opts: Any = (verb == "run" and ocicli.quick_parse(rest, ocicli.COMMON_FLAGS + RUN_FLAGS, [("id", ocicli.REQUIRED)])
                 or verb_parser(verb).parse_args(rest))
    messages.log_format = opts.log_format if opts.log_format != "text" else g.log_format
    messages.debug_on = g.debug or opts.debug
    messages.quiet = g.quiet or opts.quiet
    return int(HANDLERS[verb](g.store(), opts, messages) or 0)


def cmd_run(root: Any, opts: Any, messages: ocicli.Messages) -> int:
    # The hot path (the README's OCI_MON_RUN allowlist): the monitor reads the bundle and checks the
    # flags (oci.monitor.runspec); this side makes absolute what depends on the caller.
    from oci.monitor import client

    def absolute(path: str | None) -> str | None:
        return os.path.abspath(path) if path else None

    runtime = opts.runtime if "/" not in opts.runtime else os.path.abspath(opts.runtime)
    spec = {"bundle": os.path.realpath(opts.bundle), "runtime": runtime, "runtimeRoot": absolute(opts.runtime_root),
            "path": os.environ.get("PATH"), "commandDir": os.path.dirname(os.path.abspath(sys.argv[0] or ".")),
            "restart": opts.restart, "rm": bool(opts.rm), "stopSignal": opts.stop_signal,
            "stopTimeout": opts.stop_timeout, "logPath": absolute(opts.log_path), "logMaxSize": opts.log_max_size,
            "logMaxFiles": opts.log_max_files, "interactive": bool(opts.interactive), "tty": bool(opts.tty)}
    if not opts.attach:
        ocicli.emit(client.run(root, opts.id, options=spec, name=opts.name))
        return 0
    from oci.monitor import attach

    keys = attach.parse_keys(opts.detach_keys or attach.DEFAULT_DETACH_KEYS)
    channel = client.connect(root)
    try:
        answer = channel.request({"op": "run", "id": opts.id, "name": opts.name or opts.id, "options": spec,
                                  "attach": True, "stdin": True})
        return _attached(channel, answer, keys, True, opts.id, messages)
    finally:
        channel.close()


def _attached(channel: Any, answer: dict[str, Any], keys: bytes, sig_proxy: bool, ref: str,
              messages: ocicli.Messages) -> int:
    from oci.monitor import attach

    code = attach.session(channel, answer, keys, sig_proxy=sig_proxy)
    if code == attach.DETACHED:
        messages.info(f"detached from {ref}")
        return 0
    if code < 0:
        messages.warn(f"{ref}: its exit code is unknown")
        return 1
    return code


def cmd_ps(root: Any, opts: Any, messages: ocicli.Messages) -> int:
    import time

    from oci.monitor import client, times

    rows = client.containers(root, opts.all)
    if opts.ids:
        sys.stdout.write("".join(row["id"] + "\n" for row in rows))
        return 0
    if (opts.format or ("table" if sys.stdout.isatty() else "json")) == "json":
        ocicli.emit(rows)
        return 0
    now = time.time_ns()
    table = [("CONTAINER ID", "NAME", "COMMAND", "CREATED", "STATUS", "RESTARTS", "PID")]
    for row in rows:
        command = " ".join(row["command"])
        command = '"' + (command if len(command) <= 28 else command[:27] + "…") + '"'
        try:
            created = times.human_duration((now - times.parse_rfc3339(row["created"])) / 1e9) + " ago"
        except ValueError:
            created = row["created"]
        table.append((row["id"], row["name"], command, created, row["statusText"], str(row["restartCount"]),
                      str(row["pid"] or "")))
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    for line in table:
        cells = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        sys.stdout.write("   ".join(cells).rstrip() + "\n")
    return 0


def cmd_logs(root: Any, opts: Any, messages: ocicli.Messages) -> int:
    import time

    from oci.errors import InvalidInput, OciError
    from oci.monitor import client, crilog, record, times
    from oci.monitor.follow import RotatedFile

    tail = None
    if opts.tail != "all":
        if not opts.tail.isdigit():
            raise InvalidInput(f"--tail: {opts.tail!r} is not a number")
        tail = int(opts.tail)
    since = times.parse_since(opts.since) if opts.since else None
    until = times.parse_since(opts.until, "--until") if opts.until else None
    container_id = client.resolve(root, opts.id)
    rec = record.load(root, container_id, validate=True)
    printer = crilog.Printer(1, 2, opts.timestamps)
    source = RotatedFile(rec["config"]["log"]["path"])
    try:
        for entry in crilog.select(crilog.records(source.history()), since, until, tail):
            printer.show(entry)
        if not opts.follow:
            return 0
        boot = record.boot_id()
        while True:
            try:
                rec = record.load(root, container_id)
                live = client.describe(rec, client.monitor_alive(root), time.time_ns(), boot)["status"] in (
                    "running", "restarting", "created")
            except OciError:
                live = False  # removed
            for entry in crilog.records(source.poll()):
                if until is not None and crilog.time_ns(entry) >= until:
                    return 0
                printer.show(entry)
            if not live or (until is not None and time.time_ns() >= until):
                for entry in crilog.records(source.poll()):
                    printer.show(entry)
                return 0
            time.sleep(0.1)
    finally:
        source.close()


def cmd_wait(root: Any, opts: Any, messages: ocicli.Messages) -> int:
    from oci.monitor import client

    for ref in opts.ids:
        code = client.wait(root, ref)
        if code is None:
            messages.warn(f"{ref}: its exit code is unknown (it ended while no monitor was its parent)")
        sys.stdout.write(f"{-1 if code is None else code}\n")
        sys.stdout.flush()
    return 0


def cmd_stop(root: Any, opts: Any, messages: ocicli.Messages) -> int:
    from oci.monitor import client

    for ref in opts.ids:
        client.stop(root, ref, opts.time)
        sys.stdout.write(ref + "\n")
    return 0


def cmd_start(root: Any, opts: Any, messages: ocicli.Messages) -> int:
    from oci.monitor import client

    for ref in opts.ids:
        client.start(root, ref)
        sys.stdout.write(ref + "\n")
    return 0


def cmd_restart(root: Any, opts: Any, messages: ocicli.Messages) -> int:
    from oci.monitor import client

    for ref in opts.ids:
        client.restart(root, ref, opts.time)
        sys.stdout.write(ref + "\n")
    return 0


def cmd_kill(root: Any, opts: Any, messages: ocicli.Messages) -> int:
    from oci.errors import UsageError
    from oci.monitor import client

    if opts.signal and opts.sig:
        raise UsageError("kill: give the signal once (-s SIG, or after the ID)")
    client.kill(root, opts.id, opts.signal or opts.sig or "KILL")
    sys.stdout.write(opts.id + "\n")
    return 0


def cmd_attach(root: Any, opts: Any, messages: ocicli.Messages) -> int:
    from oci.monitor import attach, client

    keys = attach.parse_keys(opts.detach_keys or attach.DEFAULT_DETACH_KEYS)
    channel, answer = client.attach(root, opts.id, stdin=not opts.no_stdin)
    try:
        return _attached(channel, answer, keys, opts.sig_proxy == "true", opts.id, messages)
    finally:
        channel.close()


def cmd_rm(root: Any, opts: Any, messages: ocicli.Messages) -> int:
    from oci.monitor import client

    for ref in opts.ids:
        client.remove(root, ref, opts.force)
        sys.stdout.write(ref + "\n")
    return 0


def cmd_events(root: Any, opts: Any, messages: ocicli.Messages) -> int:
    import json
    import time

    from oci.monitor import events, times
    from oci.monitor.follow import RotatedFile

    filters = events.parse_filters(opts.filter)
    since = times.parse_since(opts.since) if opts.since else None
    until = times.parse_since(opts.until, "--until") if opts.until else None
    source = RotatedFile(root.events)

    def show(lines: Any) -> bool:
        """Print the matching events; False once one is at or past --until."""
        for line in lines:
            try:
                event = json.loads(line)
                stamp = int(event["timeNano"])
            except (ValueError, KeyError, TypeError):
                continue
            if until is not None and stamp >= until:
                return False
            if (since is None or stamp >= since) and events.matches(event, filters):
                sys.stdout.write(json.dumps(event, separators=(",", ":")) + "\n")
        sys.stdout.flush()
        return True

    try:
        if since is not None:
            if not show(source.history()):
                return 0
        else:
            source.skip_history()
        while until is None or time.time_ns() < until:
            if not show(source.poll()):
                return 0
            time.sleep(0.1)
        show(source.poll())
        return 0
    finally:
        source.close()


def cmd_inspect(root: Any, opts: Any, messages: ocicli.Messages) -> int:
    from oci.monitor import client

    ocicli.emit(client.inspect(root, opts.id))
    return 0


def cmd_monitor(root: Any, opts: Any, messages: ocicli.Messages) -> int:
    from oci.monitor import service

    service.serve(root, opts.idle_timeout if opts.idle_timeout > 0 else None, echo=not opts.quiet)
    return 0


HANDLERS = {"run": cmd_run, "ps": cmd_ps, "logs": cmd_logs, "wait": cmd_wait, "stop": cmd_stop, "start": cmd_start,
            "restart": cmd_restart, "kill": cmd_kill, "attach": cmd_attach, "rm": cmd_rm, "events": cmd_events,
            "inspect": cmd_inspect, "monitor": cmd_monitor}

if __name__ == "__main__":
    main()
