"""oci-run's verbs off a container's start path: exec, list, spec, features, pause, resume,
ps, update, events. bin/oci_run.py imports this module only when one of them is called, so
the verbs engines run for every container (create, start, state, kill, delete) stay lean.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Protocol

import ocicli

from oci.runtime.state import StateStore


class Globals(Protocol):
    """What these verbs use of oci-run's global flags (oci_run.Globals, which imports this module)."""

    notes: list[str]

    def store(self) -> StateStore: ...


def cmd_exec(g: Globals, opts: Any, messages: ocicli.Messages) -> int:
    import _socket

    from oci.runtime import execute, lifecycle

    store = g.store()
    process = execute.process_from_file(opts.process, g.notes) if opts.process else _exec_process(store, opts)
    direct_tty = bool(process.get("terminal")) and not opts.detach and opts.console_socket is None
    pair = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM) if direct_tty else None
    exec_opts = execute.ExecOptions(console_socket=opts.console_socket, pid_file=opts.pid_file,
                                    console_fd=pair[1].fileno() if pair else None,
                                    preserve_fds=opts.preserve_fds, subreaper=not opts.detach)
    pid = execute.run_exec(store, opts.id, process, exec_opts, g.notes)
    if opts.detach:
        return 0
    from oci.linux.terminal import take_master

    master = take_master(pair)

    return lifecycle.wait_in_foreground(pid, master)


def _exec_process(store: Any, opts: Any) -> dict[str, Any]:
    """The process to exec from the command line: the container's own process with overrides."""
    import copy

    from oci.errors import UsageError
    from oci.runtime import config as config_mod

    if not opts.command:
        raise UsageError("exec: a command (or --process) is required")
    process = copy.deepcopy(config_mod.load(store.load(opts.id).bundle).get("process") or {"cwd": "/"})
    process["args"] = opts.command
    process["terminal"] = opts.tty
    process.pop("consoleSize", None)
    process["env"] = [*process.get("env", []), *opts.env]
    if opts.cwd:
        process["cwd"] = opts.cwd
    if opts.user:
        uid, _, gid = opts.user.partition(":")
        process["user"] = {"uid": int(uid), "gid": int(gid or 0)}
    if opts.additional_gids:
        process.setdefault("user", {})["additionalGids"] = opts.additional_gids
    if opts.no_new_privs:
        process["noNewPrivileges"] = True
    for cap in opts.cap:
        for kind in ("bounding", "effective", "permitted"):
            process.setdefault("capabilities", {}).setdefault(kind, []).append(cap)
    return process


def cmd_list(g: Globals, opts: Any, messages: ocicli.Messages) -> int:
    containers = [c.runc_state() for c in g.store().list()]
    if opts.quiet:
        sys.stdout.write("".join(c["id"] + "\n" for c in containers))
    elif opts.format == "json":
        from oci import jsonout

        sys.stdout.write(jsonout.dumps(containers) + "\n")
    else:
        rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        rows += [(c["id"], str(c["pid"]), c["status"], c["bundle"], c["created"], c["owner"] or "root")
                 for c in containers]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ("   ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows)
        sys.stdout.write("".join(line + "\n" for line in lines))
    return 0


def cmd_spec(g: Globals, opts: Any, messages: ocicli.Messages) -> int:
    import json

    from oci.errors import Conflict
    from oci.fsutil import write_atomic
    from oci.runtime.defaults import default_config

    path = os.path.join(opts.bundle, "config.json")
    if os.path.exists(path):
        raise Conflict(f"{path} exists: remove it first")
    write_atomic(path, (json.dumps(default_config(rootless=opts.rootless), indent=2) + "\n").encode())
    return 0


def cmd_features(g: Globals, opts: Any, messages: ocicli.Messages) -> int:
    from oci.runtime.features import features

    ocicli.emit(features())
    return 0


def cmd_pause(g: Globals, opts: Any, messages: ocicli.Messages) -> int:
    from oci.runtime import control

    control.pause(g.store(), opts.id)
    return 0


def cmd_resume(g: Globals, opts: Any, messages: ocicli.Messages) -> int:
    from oci.runtime import control

    control.resume(g.store(), opts.id)
    return 0


def cmd_ps(g: Globals, opts: Any, messages: ocicli.Messages) -> int:
    from oci import jsonout
    from oci.errors import UsageError
    from oci.runtime import stats

    if opts.format not in ("table", "json"):
        raise UsageError(f"ps: --format: {opts.format!r} is neither table nor json")
    pids = stats.pids(g.store(), opts.id)
    ps_args = getattr(opts, "ps_args", [])  # quick_parse leaves it out: there were none
    ps_args = ps_args[1:] if ps_args[:1] == ["--"] else ps_args
    if opts.format == "json":
        if ps_args:
            raise UsageError("ps: arguments for ps(1) need --format table")
        sys.stdout.write(jsonout.dumps(pids) + "\n")
        return 0
    sys.stdout.write(stats.ps_table(pids, ps_args or ["-ef"]))
    return 0


def cmd_update(g: Globals, opts: Any, messages: ocicli.Messages) -> int:
    from oci.errors import Unsupported, UsageError
    from oci.runtime import control

    refused = ["--" + name[len("refused_"):].replace("_", "-") for name, value in vars(opts).items()
               if name.startswith("refused_") and value is not None]  # runc's flags oci-run refuses
    if refused:
        raise Unsupported(f"update: {refused[0]}: not supported by oci-run (it updates memory, pids, cpu and "
                          "block I/O limits)")
    for flag, value in (("--kernel-memory", opts.kernel_memory), ("--kernel-memory-tcp", opts.kernel_memory_tcp)):
        if value is not None:
            messages.warn(f"update: {flag}: kernel memory settings are ignored (as runc ignores them)")
    flags = {"--memory": opts.memory, "--memory-reservation": opts.memory_reservation,
             "--memory-swap": opts.memory_swap, "--pids-limit": opts.pids_limit, "--cpu-share": opts.cpu_share,
             "--cpu-quota": opts.cpu_quota, "--cpu-period": opts.cpu_period, "--cpuset-cpus": opts.cpuset_cpus,
             "--cpuset-mems": opts.cpuset_mems, "--cpu-rt-period": opts.cpu_rt_period,
             "--cpu-rt-runtime": opts.cpu_rt_runtime, "--blkio-weight": opts.blkio_weight}
    if opts.resources is not None:
        if any(value is not None for value in flags.values()):
            raise UsageError("update: --resources takes no other resource flag")
        if opts.resources == "-":
            source, data = "<stdin>", sys.stdin.buffer.read()
        else:
            source = opts.resources
            try:
                with open(source, "rb") as f:
                    data = f.read()
            except OSError as err:
                from oci.errors import NotFound

                raise NotFound(f"{source}: {err.strerror}") from None
        resources = control.load_resources(data, source, g.notes)
    else:
        resources = control.resources_from_flags(flags)
    control.update(g.store(), opts.id, resources)
    return 0


def cmd_events(g: Globals, opts: Any, messages: ocicli.Messages) -> int:
    from oci import jsonout
    from oci.runtime import stats

    store = g.store()
    if opts.stats:
        sys.stdout.write(jsonout.dumps(stats.stats_event(store, opts.id), separators=(",", ":")) + "\n")
        return 0
    for event in stats.watch(store, opts.id, stats.parse_interval(opts.interval)):
        sys.stdout.write(jsonout.dumps(event, separators=(",", ":")) + "\n")
        sys.stdout.flush()
    return 0
