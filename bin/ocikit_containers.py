"""ocikit's container verbs: run and create, the lifecycle (start, stop, kill, rm, ...), looking at
containers (ps, logs, top, stats, port, inspect) and working in them (exec, cp, commit). Imported by
ocikit.py for these verbs; the engine (oci.engine) does the work.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, Callable

import ocicli
from ocikit import PROG, Context, add_registry_flags, parser, print_documents, pull_with_progress, raise_usage

from oci.errors import Conflict, NotFound, OciError, Unsupported

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

# -- run and create --------------------------------------------------------------------------

RUN_EXAMPLES = """\
  ocikit run --rm 127.0.0.1:5000/library/busybox echo hello
  ocikit run -it --rm 127.0.0.1:5000/library/busybox sh
  ocikit run -d --name web -p 8080:80 -v site:/www 127.0.0.1:5000/library/busybox httpd -f -p 80 -h /www
  ocikit run --network none -m 64m --pids-limit 32 --read-only 127.0.0.1:5000/library/busybox true"""


def run_parser(verb: str) -> argparse.ArgumentParser:
    import argparse

    from oci_bundle import add_run_flags

    p = parser(verb, "Create a container from IMAGE and run COMMAND in it (pulled when missing)",
               f"{PROG} {verb} [OPTIONS] IMAGE [COMMAND] [ARG...]", RUN_EXAMPLES)
    p.add_argument("-d", "--detach", action="store_true", help="run in the background (through oci-mon), print the ID")
    p.add_argument("--rm", action="store_true", help="remove the container when it exits")
    p.add_argument("--name", help="the container's name, also its host name and DNS name (default: made up)")
    p.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a terminal")
    p.add_argument("-p", "--publish", action="append", default=[], metavar="[IP:][HOSTPORT:]PORT[/PROTO]",
                   help="publish a container port on the host (a free host port when none is given)")
    p.add_argument("-P", "--publish-all", action="store_true", help="publish every exposed port on a free port")
    p.add_argument("--network", "--net", default="bridge", metavar="bridge|none|host|NAME",
                   help="the network to connect to (default: bridge)")
    p.add_argument("--network-alias", dest="aliases", action="append", default=[], metavar="ALIAS",
                   help="another DNS name on the network")
    p.add_argument("-v", "--volume", action="append", default=[], metavar="NAME|PATH:DEST[:ro]",
                   help="a named volume (shared, made if missing), a host path, or an anonymous volume")
    p.add_argument("--mount", action="append", default=[], metavar="type=volume|bind|tmpfs,...",
                   help="a mount in Docker's key=value syntax")
    p.add_argument("--restart", default="no", metavar="POLICY",
                   help="no, always, unless-stopped or on-failure[:N] (detached containers)")
    p.add_argument("-l", "--label", action="append", default=[], metavar="KEY=VALUE", help="a container label")
    p.add_argument("--cgroup-parent", default="/ocikit", metavar="PATH",
                   help="the parent of the container's cgroup (default: /ocikit)")
    p.add_argument("--pull", choices=("missing", "always", "never"), default="missing",
                   help="when to pull the image (default: missing)")
    p.add_argument("--platform", metavar="OS/ARCH[/VARIANT]", help="the platform to pull")
    p.add_argument("-q", "--quiet", action="store_true", help="no pull progress")
    add_registry_flags(p)
    add_run_flags(p)
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND")
    return p


def run_options(args: Any) -> Any:
    from oci_bundle import bundle_fields, oci_net_command

    from oci.engine.create import RunOptions

    fields = bundle_fields(args)
    hostname = fields.pop("hostname")
    return RunOptions(image=args.image, command=list(args.command), name=args.name,
                      detach=getattr(args, "detach", False), remove=args.rm, interactive=args.interactive,
                      tty=args.tty, network=args.network,
                      publish=list(args.publish), publish_all=args.publish_all, aliases=list(args.aliases),
                      volumes=list(args.volume),
                      mounts=list(args.mount), hostname=hostname, restart=args.restart, labels=list(args.label),
                      cgroup_parent=args.cgroup_parent,
                      bundle=fields, oci_net=oci_net_command())


def image_for_run(context: Context, args: Any) -> Any:
    """The image to run, pulled as `docker run` pulls it (messages on stderr)."""

    engine = context.engine
    found = engine.images.maybe_find(args.image)
    if found is not None and args.pull != "always":
        return found
    if args.pull == "never":
        raise NotFound(f"No such image: {args.image}")
    if found is None:
        context.messages.info(f"Unable to find image '{args.image}' locally")
    return pull_with_progress(context, args.image, args, quiet=args.quiet).image


def cmd_run(context: Context, argv: list[str]) -> int:
    from oci.engine import create, foreground
    from oci.fsutil import relaxed

    create.warm_validator()
    args = run_parser("run").parse_args(argv)
    opts = run_options(args)
    engine = context.engine
    if args.rm and not args.detach:
        with relaxed():  # nothing of a --rm container is needed after a crash: no fsyncs
            return run_foreground(context, args, opts)
    try:
        record = create.create(engine, image_for_run(context, args), opts)
    except OciError as err:
        raise foreground.RunFailed(err.message, foreground.CANNOT_RUN) from None
    if args.detach:
        monitor = require_monitor(context)
        monitor.start(record, interactive=args.interactive, tty=args.tty)
        context.out(record["Id"] + "\n")
        return 0
    return foreground.run(engine, record, interactive=args.interactive, tty=args.tty)


def run_foreground(context: Context, args: Any, opts: Any) -> int:
    """`run --rm` in the foreground: create, run, remove, whatever happens in between."""
    from oci.engine import create, foreground, remove

    engine = context.engine
    try:
        record = create.create(engine, image_for_run(context, args), opts)
    except OciError as err:
        raise foreground.RunFailed(err.message, foreground.CANNOT_RUN) from None
    try:
        return foreground.run(engine, record, interactive=args.interactive, tty=args.tty,
                              log=False)
    finally:
        remove.remove(engine, record["Id"], force=True, volumes=True)


def require_monitor(context: Context) -> Any:
    monitor = context.monitor()
    if monitor is None:
        raise Unsupported("detached containers need oci-mon (issue 16), which is not installed")
    return monitor


def cmd_create(context: Context, argv: list[str]) -> int:
    from oci.engine import create

    args = run_parser("create").parse_args(argv)
    record = create.create(context.engine, image_for_run(context, args), run_options(args))
    context.out(record["Id"] + "\n")
    return 0


# -- containers: lifecycle ---------------------------------------------------------------------


def containers_parser(verb: str, description: str, extra: Callable[[Any], None] | None = None) -> Any:
    p = parser(verb, description, f"{PROG} {verb} [OPTIONS] CONTAINER [CONTAINER...]")
    if extra:
        extra(p)
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    return p


def for_each(context: Context, names: list[str], action: Callable[[str, str], None]) -> int:
    """Apply `action(id, name as given)` to each container, as Docker does: errors printed, others go on."""
    code = 0
    for name in names:
        try:
            cid = context.engine.containers.resolve(name)
            action(cid, name)
        except OciError as err:
            for line in err.lines():
                context.messages.error(line)
            code = err.exit_code
    return code


def cmd_start(context: Context, argv: list[str]) -> int:
    from oci.engine import foreground, status

    def extra(p: Any) -> None:
        p.add_argument("-a", "--attach", action="store_true", help="attach stdout/stderr and forward signals")
        p.add_argument("-i", "--interactive", action="store_true", help="attach stdin")

    args = containers_parser("start", "Start one or more stopped containers", extra).parse_args(argv)
    engine = context.engine
    if args.attach:
        if len(args.containers) != 1:
            raise_usage("you cannot start and attach multiple containers at once")
        cid = engine.containers.resolve(args.containers[0])
        record = _startable(context, cid)
        return foreground.run(engine, record, interactive=args.interactive, tty=record["Config"]["Tty"])

    def start(cid: str, name: str) -> None:
        record = engine.containers.load(cid)
        if status.current(engine, record, context.monitor()) in ("running", "paused"):
            context.out(name + "\n")
            return
        record = _startable(context, cid)
        require_monitor(context).start(record, interactive=record["Config"]["OpenStdin"],
                                       tty=record["Config"]["Tty"])
        context.out(name + "\n")

    return for_each(context, args.containers, start)


def _startable(context: Context, cid: str) -> dict[str, Any]:
    """The record of a container that is not running, its rootfs mounted again if a reboot took it."""
    from oci.bundle import rootfs as rootfs_module
    from oci.engine import status

    engine = context.engine
    record = status.refresh(engine, engine.containers.load(cid), context.monitor())
    if record["State"]["Status"] in ("running", "paused"):
        raise Conflict(f"container {record['Name']} is already {record['State']['Status']}")
    folder = engine.containers.folder(cid)
    from oci.runtime import config as config_mod

    annotations = config_mod.load(folder).get("annotations") or {}
    spec = annotations.get("org.ocikit.rootfs.mount")
    if spec:
        rootfs_module.ensure_mounted(json.loads(spec), os.path.join(folder, "rootfs"))
    try:
        engine.runtime_store().remove(cid)  # what a previous run left
    except Exception:  # noqa: BLE001
        pass
    return record


def cmd_stop(context: Context, argv: list[str]) -> int:
    def extra(p: Any) -> None:
        p.add_argument("-t", "--time", type=int, default=10, help="seconds to wait before killing (default: 10)")
        p.add_argument("-s", "--signal", help="the signal to stop with (default: the image's StopSignal, SIGTERM)")

    args = containers_parser("stop", "Stop one or more running containers", extra).parse_args(argv)

    def stop(cid: str, name: str) -> None:
        from oci.engine import control

        control.stop(context.engine, cid, args.time, args.signal, context.monitor())
        context.out(name + "\n")

    return for_each(context, args.containers, stop)


def cmd_restart(context: Context, argv: list[str]) -> int:
    def extra(p: Any) -> None:
        p.add_argument("-t", "--time", type=int, default=10, help="seconds to wait before killing (default: 10)")

    args = containers_parser("restart", "Restart one or more containers", extra).parse_args(argv)

    def restart(cid: str, name: str) -> None:
        from oci.engine import control

        control.stop(context.engine, cid, args.time, None, context.monitor())
        record = _startable(context, cid)
        require_monitor(context).start(record, interactive=record["Config"]["OpenStdin"],
                                       tty=record["Config"]["Tty"])
        context.out(name + "\n")

    return for_each(context, args.containers, restart)


def cmd_kill(context: Context, argv: list[str]) -> int:
    def extra(p: Any) -> None:
        p.add_argument("-s", "--signal", default="KILL", help="signal to send (default: KILL)")

    args = containers_parser("kill", "Kill one or more running containers", extra).parse_args(argv)

    def kill(cid: str, name: str) -> None:
        from oci.engine import control

        control.kill(context.engine, cid, args.signal, context.monitor())
        context.out(name + "\n")

    return for_each(context, args.containers, kill)


def cmd_rm(context: Context, argv: list[str]) -> int:
    def extra(p: Any) -> None:
        p.add_argument("-f", "--force", action="store_true", help="remove a running container (killed first)")
        p.add_argument("-v", "--volumes", action="store_true", help="remove anonymous volumes (always: they are the "
                       "container's)")

    args = containers_parser("rm", "Remove one or more containers", extra).parse_args(argv)
    from oci.engine import remove

    def rm(cid: str, name: str) -> None:
        remove.remove(context.engine, cid, force=args.force, volumes=args.volumes, monitor=context.monitor())
        context.out(name + "\n")

    return for_each(context, args.containers, rm)


def cmd_container_prune(context: Context, argv: list[str]) -> int:
    p = parser("container prune", "Remove all stopped containers")
    p.add_argument("-f", "--force", action="store_true", help="do not ask (ocikit never asks)")
    p.parse_args(argv)
    from oci.engine import remove, status

    engine = context.engine
    removed = []
    for record in list(engine.containers.records()):
        if status.current(engine, record, context.monitor()) in ("exited", "created", "dead"):
            remove.remove(engine, record["Id"], monitor=context.monitor())
            removed.append(record["Id"])
    context.out("Deleted Containers:\n" + "".join(f"{c}\n" for c in removed) if removed else "")
    context.out("\nTotal reclaimed space: 0B\n")
    return 0


def cmd_pause(context: Context, argv: list[str]) -> int:
    return _freeze(context, argv, "pause", "Pause all processes within one or more containers")


def cmd_unpause(context: Context, argv: list[str]) -> int:
    return _freeze(context, argv, "unpause", "Unpause all processes within one or more containers")


def _freeze(context: Context, argv: list[str], verb: str, description: str) -> int:
    """`pause` or `unpause` each container named, through the runtime's freezer."""
    args = containers_parser(verb, description).parse_args(argv)

    def act(cid: str, name: str) -> None:
        from oci.runtime import control

        (control.pause if verb == "pause" else control.resume)(context.engine.runtime_store(), cid)
        context.out(name + "\n")

    return for_each(context, args.containers, act)


def cmd_wait(context: Context, argv: list[str]) -> int:
    args = containers_parser("wait", "Block until one or more containers stop, then print their exit codes"
                             ).parse_args(argv)

    def wait(cid: str, name: str) -> None:
        from oci.engine import control

        context.out(f"{control.wait(context.engine, cid, context.monitor())}\n")

    return for_each(context, args.containers, wait)


def cmd_rename(context: Context, argv: list[str]) -> int:
    p = parser("rename", "Rename a container", f"{PROG} rename CONTAINER NEW_NAME")
    p.add_argument("container")
    p.add_argument("new_name")
    args = p.parse_args(argv)
    engine = context.engine
    engine.containers.rename(engine.containers.resolve(args.container), args.new_name)
    return 0


# -- containers: looking at them ------------------------------------------------------------


def cmd_ps(context: Context, argv: list[str]) -> int:
    p = parser("ps", "List containers (running ones; -a for all)")
    p.add_argument("-a", "--all", action="store_true", help="show all containers (default: running ones)")
    p.add_argument("-q", "--quiet", action="store_true", help="only display container IDs")
    p.add_argument("--no-trunc", action="store_true", help="do not truncate output")
    p.add_argument("-l", "--latest", action="store_true", help="show the latest created container")
    p.add_argument("-n", "--last", type=int, default=-1, help="show the n last created containers")
    p.add_argument("-f", "--filter", action="append", default=[], metavar="KEY=VALUE",
                   help="filter: name, id, status, label, ancestor")
    p.add_argument("--format", help="table (default), json, or a Go template ({{.ID}} {{.Names}} ...)")
    args = p.parse_args(argv)
    from oci.engine import listing
    from oci.engine.formatting import emit

    rows = listing.containers(context.engine, context.monitor(), all_=args.all or args.latest or args.last > 0,
                              filters=args.filter, no_trunc=args.no_trunc)
    if args.latest:
        rows = rows[:1]
    elif args.last > 0:
        rows = rows[: args.last]
    context.out(emit(rows, args.format, listing.containers_table, "ID", args.quiet))
    return 0


def cmd_container_inspect(context: Context, argv: list[str]) -> int:
    p = parser("container inspect", "Low-level information on one or more containers")
    p.add_argument("-f", "--format", help="a Go template, or json")
    p.add_argument("-s", "--size", action="store_true", help="accepted")
    p.add_argument("names", nargs="+", metavar="CONTAINER")
    args = p.parse_args(argv)
    from oci.engine import inspection

    return print_documents(context, args, lambda name: inspection.container(context.engine, name,
                                                                           context.monitor()))


def cmd_top(context: Context, argv: list[str]) -> int:
    import argparse

    p = parser("top", "Display the running processes of a container", f"{PROG} top CONTAINER [ps OPTIONS]")
    p.add_argument("container")
    p.add_argument("ps_args", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    from oci.runtime import stats

    engine = context.engine
    cid = engine.containers.resolve(args.container)
    pids = stats.pids(engine.runtime_store(), cid)
    context.out(stats.ps_table(pids, args.ps_args or ["-ef"]))
    return 0


def cmd_stats(context: Context, argv: list[str]) -> int:
    p = parser("stats", "Display resource usage of containers (one sample with --no-stream)")
    p.add_argument("-a", "--all", action="store_true", help="all containers (default: running ones)")
    p.add_argument("--no-stream", action="store_true", help="print one sample and exit")
    p.add_argument("--format", help="table (default), json, or a Go template")
    p.add_argument("containers", nargs="*", metavar="CONTAINER")
    args = p.parse_args(argv)

    from oci.engine import listing
    from oci.engine.formatting import emit

    if args.no_stream:  # CPU use is measured between two samples, as docker stats --no-stream does
        listing.stats(context.engine, context.monitor(), args.containers, args.all)
        time.sleep(0.5)
    while True:
        rows = listing.stats(context.engine, context.monitor(), args.containers, args.all)
        text = emit(rows, args.format, listing.stats_table)
        if args.no_stream:
            context.out(text)
            return 0
        context.out("\x1b[2J\x1b[H" + text if sys.stdout.isatty() else text)
        time.sleep(2)


def cmd_port(context: Context, argv: list[str]) -> int:
    p = parser("port", "List port mappings of a container", f"{PROG} port CONTAINER [PRIVATE_PORT[/PROTO]]")
    p.add_argument("container")
    p.add_argument("port", nargs="?")
    args = p.parse_args(argv)
    engine = context.engine
    record = engine.containers.load(engine.containers.resolve(args.container))
    bindings = record["HostConfig"].get("PortBindings") or {}
    lines = []
    wanted = None
    if args.port:
        wanted = args.port if "/" in args.port else f"{args.port}/tcp"
        if wanted not in bindings:
            raise NotFound(f"No public port '{wanted}' published for {args.container}")
    for key, hosts in sorted(bindings.items()):
        if wanted and key != wanted:
            continue
        for binding in hosts:
            host = f"{binding['HostIp'] or '0.0.0.0'}:{binding['HostPort']}"
            lines.append(host if wanted else f"{key} -> {host}")
    context.out("".join(line + "\n" for line in lines))
    return 0


def cmd_logs(context: Context, argv: list[str]) -> int:
    p = parser("logs", "Fetch the logs of a container (what it printed, kept in the CRI format)")
    p.add_argument("-f", "--follow", action="store_true", help="follow log output")
    p.add_argument("--since", help="logs since a timestamp or relative time (42m)")
    p.add_argument("--until", help="logs before a timestamp or relative time")
    p.add_argument("-n", "--tail", default="all", help="lines from the end (default: all)")
    p.add_argument("-t", "--timestamps", action="store_true", help="show timestamps")
    p.add_argument("--details", action="store_true", help="accepted")
    p.add_argument("container")
    args = p.parse_args(argv)
    from oci.engine import logs

    engine = context.engine
    return logs.show(engine, engine.containers.resolve(args.container), follow=args.follow, since=args.since,
                     until=args.until, tail=args.tail, timestamps=args.timestamps, monitor=context.monitor())


def _monitored(context: Context, name: str) -> str:
    """The ID of a container the monitor runs (attach needs one)."""
    engine = context.engine
    cid = engine.containers.resolve(name)
    if not engine.containers.load(cid).get("Monitored"):
        raise Unsupported(f"{name}: a container run in the foreground has its terminal already: attach works for "
                          "containers run detached (run -d, start)")
    return cid


def cmd_attach(context: Context, argv: list[str]) -> int:
    p = parser("attach", "Attach to a running container's input and output (detach keys ctrl-p ctrl-q)")
    p.add_argument("--no-stdin", action="store_true", help="do not attach stdin")
    p.add_argument("--detach-keys", help="keys that detach (default: ctrl-p,ctrl-q)")
    p.add_argument("--sig-proxy", default="true", choices=("true", "false"), help="forward signals (default: true)")
    p.add_argument("container")
    args = p.parse_args(argv)
    monitor = require_monitor(context)
    cid = _monitored(context, args.container)
    import oci_mon

    options = ocicli.Options(id=cid, no_stdin=args.no_stdin, detach_keys=args.detach_keys, sig_proxy=args.sig_proxy)
    return int(oci_mon.cmd_attach(monitor.root, options, context.messages) or 0)


# -- containers: exec, cp, commit ----------------------------------------------------------


def cmd_exec(context: Context, argv: list[str]) -> int:
    import argparse

    p = parser("exec", "Run a command in a running container", f"{PROG} exec [OPTIONS] CONTAINER COMMAND [ARG...]")
    p.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a terminal")
    p.add_argument("-d", "--detach", action="store_true", help="run in the background")
    p.add_argument("-e", "--env", action="append", default=[], metavar="NAME=VALUE", help="set a variable")
    p.add_argument("--env-file", action="append", default=[], metavar="FILE", help="read variables from a file")
    p.add_argument("-u", "--user", help="USER[:GROUP] (names or numbers)")
    p.add_argument("-w", "--workdir", help="working directory inside the container")
    p.add_argument("--privileged", action="store_true", help="every capability for the command")
    p.add_argument("container")
    p.add_argument("command", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    if not args.command:
        raise_usage("exec needs a command")
    from oci.engine import execute

    return execute.run(context.engine, context.engine.containers.resolve(args.container), args.command,
                       interactive=args.interactive, tty=args.tty, detach=args.detach, env=args.env,
                       env_files=args.env_file, user=args.user, workdir=args.workdir, privileged=args.privileged)


def cmd_cp(context: Context, argv: list[str]) -> int:
    p = parser("cp", "Copy files between a container and the host (- for a tar stream)",
               f"{PROG} cp CONTAINER:SRC DEST | SRC CONTAINER:DEST")
    p.add_argument("-a", "--archive", action="store_true", help="keep owners (always done as root)")
    p.add_argument("-L", "--follow-link", action="store_true", help="follow a symlink given as SRC")
    p.add_argument("source")
    p.add_argument("destination")
    args = p.parse_args(argv)
    from oci.engine import copy

    copy.copy(context.engine, args.source, args.destination, follow=args.follow_link)
    return 0


def cmd_commit(context: Context, argv: list[str]) -> int:
    p = parser("commit", "Create a new image from a container's changes",
               f"{PROG} commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]")
    p.add_argument("-a", "--author", help="author")
    p.add_argument("-m", "--message", help="commit message")
    p.add_argument("-c", "--change", action="append", default=[],
                   help="a Dockerfile instruction for the config: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, "
                   "VOLUME, WORKDIR, STOPSIGNAL")
    p.add_argument("-p", "--pause", default="true", help="pause the container while committing (default: true)")
    p.add_argument("container")
    p.add_argument("repository", nargs="?")
    args = p.parse_args(argv)
    from oci.engine import commit

    engine = context.engine
    image_id = commit.commit(engine, engine.containers.resolve(args.container), args.repository,
                             author=args.author, message=args.message, changes=args.change,
                             pause=args.pause.lower() not in ("false", "0"))
    context.out(image_id + "\n")
    return 0
