"""`exec`: run another process inside a running container, in all of its namespaces and its cgroup.

A forked child opens the init's namespaces, joins them (user first, mount last: that makes the
container's root ours), and forks the process that becomes a member of the container's pid
namespace. The runtime moves that one into the container's cgroup before it goes on; it then
sets itself up as `start` does for the init, and execs. The channel closes on exec: an empty
read means the exec happened, a message is the error.
"""

from __future__ import annotations

import _socket  # not socket, which builds enums: see lifecycle
import os

from oci.errors import Conflict, InvalidInput, OciError
from oci.runtime.channel import Channel
from oci.runtime.state import StateStore

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn



class ExecOptions:
    """The flags of `exec` once the process is known."""

    def __init__(self, console_socket: str | None = None, console_fd: int | None = None, pid_file: str | None = None,
                 preserve_fds: int = 0, subreaper: bool = False) -> None:
        self.console_socket, self.console_fd, self.pid_file = console_socket, console_fd, pid_file
        self.preserve_fds, self.subreaper = preserve_fds, subreaper


def process_from_file(path: str, notes: list[str] | None = None) -> dict[str, Any]:
    """A process.json (`exec --process`), read as the `process` of a config: validated, checked as runc
    checks it, unknown properties ignored (and appended to `notes`)."""
    from oci import RUNTIME_SPEC_VERSION, schema
    from oci.errors import InvalidDocument, NotFound, Unsupported
    from oci.runtime.config import (
        PROCESS_RULES,
        Review,
        and_more,
        check_labels,
        check_process,
        fold_keys,
        one_line,
        review,
    )

    try:
        with open(path, "rb") as f:
            process = schema.parse(f.read(), path)
    except FileNotFoundError:
        raise NotFound(f"{path}: no such file") from None
    if not isinstance(process, dict):
        raise InvalidDocument(path, [("", "not a process object")])
    folded: list[str] = []
    fold_keys(process, PROCESS_RULES, "", folded)
    problems = schema.violations({"ociVersion": RUNTIME_SPEC_VERSION, "root": {"path": "rootfs"}, "process": process},
                                 "runtime-config")
    if problems:
        problems = [(p.removeprefix("/process"), m) for p, m in problems]
        raise InvalidDocument(path, [(problems[0][0], problems[0][1] + and_more(problems))])
    found = review(process, PROCESS_RULES, "", Review())
    check_process(process, found, "")
    check_labels({"process": process}, found)
    if found.invalid:
        raise InvalidInput(one_line(path, found.invalid + found.refused))
    if found.refused:
        raise Unsupported(one_line(path, found.refused))
    if notes is not None:
        notes += [f"{path}: {note}" for note in folded + found.notes]
    return process


def run_exec(store: StateStore, container_id: str, process: dict[str, Any], opts: ExecOptions,
             notes: list[str] | None = None) -> int:
    """Start `process` in the container; its host pid."""
    from oci.linux import cgroups
    from oci.linux.kernel import PR_SET_CHILD_SUBREAPER, kernel
    from oci.linux.namespaces import JOIN_ORDER, PROC_NAMES
    from oci.runtime import config as config_mod
    from oci.runtime.channel import InitError
    from oci.runtime.process import preload

    container = store.load(container_id)
    status = container.status()
    if status not in ("created", "running"):
        raise Conflict(f"cannot exec in a {status} container")
    config = config_mod.load(container.bundle, notes)
    seccomp_filter = None
    if config["linux"].get("seccomp"):
        from oci.linux import seccomp

        seccomp_filter = seccomp.build(config["linux"]["seccomp"], bool(process.get("noNewPrivileges")))
    fds = {}  # the container's namespaces that are not ours, by type, in the order they are joined
    for kind in JOIN_ORDER:
        name = PROC_NAMES[kind]
        try:
            own = os.stat(f"/proc/self/ns/{name}").st_ino
            the_containers = os.stat(f"/proc/{container.pid}/ns/{name}").st_ino
        except FileNotFoundError:
            continue
        if own != the_containers:
            fds[kind] = os.open(f"/proc/{container.pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)
    console_fd, console_sock = opts.console_fd, None
    if opts.console_socket:
        console_sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        from oci.linux import unixsock

        try:
            unixsock.connect(console_sock, opts.console_socket)
        except OSError as err:
            raise InvalidInput(f"console socket {opts.console_socket}: {err.strerror}") from None
        console_fd = console_sock.fileno()
    if process.get("terminal") and console_fd is None:
        raise OciError("exec: a terminal needs --console-socket (or no --detach)")
    ours, theirs = Channel.pair()
    if opts.subreaper:
        kernel().prctl(PR_SET_CHILD_SUBREAPER, 1)
    preload(process)  # before the fork, and before the container's namespaces hide the runtime's files
    joiner = os.fork()
    if joiner == 0:
        ours.close()
        _join(theirs, fds, process, config, seccomp_filter, console_fd, opts.preserve_fds)
    theirs.close()
    for fd in fds.values():
        os.close(fd)
    if console_sock is not None:
        console_sock.close()
    try:
        message = ours.recv("pid")
        pid = message["pid"]
        if notes is not None:  # capabilities left out (config.md#linux-process)
            notes += [f"exec {container_id}: {note}" for note in message.get("warnings", [])]
    finally:
        os.waitpid(joiner, 0)
    cgroups.manager(container.cgroup_path).join(pid)
    ours.send("go")
    data = ours.sock.recv(65536)
    ours.close()
    if data:
        raise InitError(f"exec: {Channel.decode(data)}")
    if opts.pid_file:
        from oci.runtime.state import write_atomic

        write_atomic(os.path.abspath(opts.pid_file), str(pid).encode())
    return pid


def _join(channel: Channel, fds: dict[str, int], process: dict[str, Any], config: dict[str, Any],
          seccomp_filter: Any, console_fd: int | None, preserve_fds: int) -> NoReturn:
    from oci.linux import namespaces
    from oci.linux.kernel import PR_SET_DUMPABLE, kernel
    from oci.runtime.process import describe_error, environment, finalize, find_executable, report_failure

    try:
        kernel().prctl(PR_SET_DUMPABLE, 0)
        for kind in list(fds):  # user first, mount last (namespaces.JOIN_ORDER)
            namespaces.join(kind, fds.pop(kind))
        warnings: list[str] = []
        if process.get("capabilities"):  # what can be granted is known once in the container's namespaces
            from oci.linux.capabilities import grantable_only

            process["capabilities"], warnings = grantable_only(process["capabilities"])
        pid = os.fork()
        if pid == 0:
            channel.recv("go")
            if process.get("terminal"):
                from oci.linux import terminal

                master, slave = os.openpty()
                if process.get("consoleSize"):
                    terminal.set_size(master, process["consoleSize"].get("height", 0),
                                      process["consoleSize"].get("width", 0))
                terminal.send_master(console_fd, master)  # type: ignore[arg-type]
                os.close(master)
                terminal.make_controlling(slave)
            os.chdir(process.get("cwd", "/"))
            env = process.get("env") or []
            executable = find_executable(process["args"][0], env)
            finalize(process, config["linux"].get("personality"), seccomp_filter, preserve_fds,
                     keep=channel.fileno())
            os.execve(executable, process["args"], environment(env))
        channel.send("pid", pid=pid, warnings=warnings)
    except BaseException as err:  # noqa: BLE001 - every failure goes back to the runtime
        report_failure(channel, describe_error(err))
    os._exit(0)
