"""The runtime spec's operations: create, start, kill, delete, state, as runtime.md lays them out."""

from __future__ import annotations

# _signal and _socket, not signal and socket: those build enums (enum, functools, collections,
# selectors: ~8 ms of imports) that a runtime, called many times per container, does not need.
import _signal
import _socket
import errno
import os
import time

from oci.errors import Conflict, InvalidInput, NotFound, OciError, UsageError
from oci.runtime.state import Container, StateStore, process_start_time, write_atomic

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class CreateOptions:
    """The flags of `create` (and `run`).

    `subreaper`: `run` has the init reparented to itself to wait for it;
    `console_fd`: `run -t` holds the other end, which receives the pty master;
    `notes`: what the config asked for and oci-run ignored is appended there (for --log).
    """

    def __init__(self, pid_file: str | None = None, console_socket: str | None = None, no_pivot: bool = False,
                 preserve_fds: int = 0, subreaper: bool = False, console_fd: int | None = None,
                 notes: list[str] | None = None) -> None:
        self.pid_file, self.console_socket, self.no_pivot = pid_file, console_socket, no_pivot
        self.preserve_fds, self.subreaper, self.console_fd = preserve_fds, subreaper, console_fd
        self.notes = notes


def _now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1e9):09d}Z"


def create(store: StateStore, container_id: str, bundle: str, opts: CreateOptions) -> Container:
    """Create the container: namespaces, cgroup, rootfs, createRuntime/createContainer hooks; init waits for start."""
    from oci.runtime import config as config_mod

    bundle = os.path.realpath(bundle)
    if not os.path.isdir(bundle):
        raise NotFound(f"bundle {bundle} does not exist")
    config = config_mod.load(bundle, opts.notes)
    process = config.get("process") or {}  # optional until start (config.md#process)
    rootfs = config_mod.rootfs_of(bundle, config)
    if process.get("terminal") and opts.console_socket is None and opts.console_fd is None:
        raise UsageError("cannot allocate tty if oci-run will detach without setting console socket")
    if not process.get("terminal") and opts.console_socket is not None:
        raise UsageError("cannot use console socket if oci-run will not detach or allocate tty")
    folder = store.reserve(container_id)
    try:
        return _create_in(store, folder, container_id, bundle, config, rootfs, opts)
    except BaseException:
        store.remove(container_id)
        raise


def _create_in(store: StateStore, folder: str, container_id: str, bundle: str, config: dict[str, Any],
               rootfs: str, opts: CreateOptions) -> Container:
    from oci.linux import cgroups
    from oci.linux.cgroups import prime

    linux = config["linux"]
    cgroup_path = cgroups.normalize_path(linux.get("cgroupsPath"), container_id)
    cgroup = cgroups.manager(cgroup_path)
    cgroup.create()
    # The kernel's cgroup-move grace period now runs while we import the rest, fork, and the init
    # prepares the rootfs. Not earlier: a move holds the cgroup mutex through that grace period,
    # so it would hold up the mkdirs.
    prime.start()
    pid = 0
    hooks_failed = False
    container = Container(id=container_id, bundle=bundle, created=_now(), annotations=config.get("annotations") or {},
                          rootfs=rootfs,
                          cgroup_path=cgroup_path, hooks=config.get("hooks") or {},
                          oci_version=config["ociVersion"], directory=folder)
    process = config.get("process") or {}
    container.terminal = bool(process.get("terminal"))
    try:
        from oci.linux import namespaces
        from oci.linux.kernel import PR_SET_CHILD_SUBREAPER, kernel
        from oci.runtime.channel import Channel, InitError
        from oci.runtime.process import InitOptions, fork_init, forks_init_directly, preload, stage_a

        # The device rules exactly as the config says: a node in linux.devices is only as usable as
        # linux.resources.devices allows (`--device /dev/loop0:/dev/xvdc:r` is read-only, as with runc).
        cgroup.apply(linux.get("resources") or {}, opts.notes)
        console_fd = opts.console_fd
        console_sock = None
        if opts.console_socket is not None:
            from oci.linux import unixsock

            console_sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
            try:
                unixsock.connect(console_sock, opts.console_socket)
            except OSError as err:
                raise InvalidInput(f"console socket {opts.console_socket}: {err.strerror}") from None
            console_fd = console_sock.fileno()
        seccomp_filter = None
        if linux.get("seccomp"):
            from oci.linux import seccomp

            seccomp_filter = seccomp.build(linux["seccomp"], bool(process.get("noNewPrivileges")))
        # The init inherits the listening socket `start` connects to: it need not reach the state dir.
        exec_listener = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        exec_sock = os.path.join(folder, "exec.sock")
        if len(os.fsencode(exec_sock)) < 100:  # within sun_path, as `start` connects to it
            exec_listener.bind(exec_sock)
        else:  # any --root length (Docker's runtime root with a 64-hex id)
            from oci.linux import unixsock

            unixsock.bind(exec_listener, exec_sock)
        exec_listener.listen(1)
        from oci.linux.mountopts import wants_idmap

        idmapped: dict[int, int] = {}
        if any(wants_idmap(mount) for mount in config.get("mounts") or ()):
            from oci.linux import idmap

            idmapped = idmap.prepare(config, bundle)  # in the host's namespaces: see oci.linux.idmap
        init_opts = InitOptions(config=config, bundle=bundle, exec_listener=exec_listener,
                                no_pivot=opts.no_pivot, preserve_fds=opts.preserve_fds, console_fd=console_fd,
                                cgroup_binds=cgroup.mount_binds(), seccomp_filter=seccomp_filter,
                                idmapped=idmapped)
        ours, theirs = Channel.pair()
        if opts.subreaper:
            kernel().prctl(PR_SET_CHILD_SUBREAPER, 1)
        preload(process, config.get("hooks"))
        ns = namespaces.Namespaces(linux.get("namespaces", []))
        direct = forks_init_directly(ns)
        if direct:
            pid = fork_init(theirs, ours, init_opts, ns)
        else:
            stage_a_pid = os.fork()
            if stage_a_pid == 0:
                ours.close()
                stage_a(theirs, init_opts)
        theirs.close()
        exec_listener.close()
        for fd in idmapped.values():  # the init has its copies
            os.close(fd)
        if console_sock is not None:
            console_sock.close()
        if not direct:
            try:
                ours.send("go")
                message = ours.recv()
                if message["kind"] == "userns":
                    namespaces.write_id_maps(stage_a_pid, linux.get("uidMappings", []), linux.get("gidMappings", []))
                    ours.send("mapped")
                    message = ours.recv()
                if message["kind"] != "pid":
                    raise InitError(f"container init: expected its pid, got {message['kind']}")
                pid = message["pid"]
            finally:
                os.waitpid(stage_a_pid, 0)
        container.pid = pid
        container.start_time = process_start_time(pid) or 0
        cgroup.join(pid)  # while the init prepares the rootfs; it waits for "state" to go on
        prime.stop()
        left_out = ours.recv("hooks").get("warnings", [])  # capabilities (config.md#linux-process)
        if opts.notes is not None:
            opts.notes += [f"{bundle}/config.json: {note}" for note in left_out]
        # runtime.md#state: "created" once the environment is built (after lifecycle step 2), which is
        # where prestart (step 3), createRuntime (4) and createContainer (5) run; "creating" is step 2
        # itself. (crun passes "created"; runc 1.1 passes "creating" to the first two.)
        created = container.spec_state("created")
        if container.hooks.get("prestart") or container.hooks.get("createRuntime"):
            from oci.runtime import hooks  # only then: most containers have none

            try:
                hooks.run_hooks(container.hooks, "prestart", created)
                hooks.run_hooks(container.hooks, "createRuntime", created)
            except hooks.HookError:
                hooks_failed = True
                raise
        ours.send("state", state=created)
        try:
            ours.recv("ready")
        except OciError as err:
            hooks_failed = "createContainer hook" in err.message
            raise
        ours.close()
        store.save(container)
        if opts.pid_file:
            write_atomic(os.path.abspath(opts.pid_file), str(pid).encode())
        return container
    except BaseException:
        _stop(pid, cgroup, opts.subreaper)
        try:
            cgroup.destroy()
        except OciError:
            pass
        if hooks_failed:
            _hooks_warn(container, "poststop", "stopped")
        raise


def signal_all(cgroup: Any, signum: int, also: int = 0) -> set[int]:
    """Send `signum` to every process of the cgroup, and to `also` (an init that may not have joined it
    yet); the pids signalled. SIGKILL goes through cgroup.kill where the kernel has it (v2, 5.14+: no fork
    escapes it); otherwise the cgroup is frozen while its pids are listed and signalled, so that no process
    forks a child the list misses (runc's signalAllProcesses), then thawed: after SIGKILL always (a v1
    frozen task dies only once thawed), after another signal unless it was paused before (the signal
    waits for `resume`, as Docker's kill of a paused container)."""
    targets = {also} if also else set()
    if signum == _signal.SIGKILL and cgroup.kill_all():
        frozen = paused = False
    else:
        paused = cgroup.is_frozen()
        try:
            cgroup.freeze()
            frozen = True
        except OciError:  # no freezer, or a task that will not freeze: signal what is there
            frozen = False
        targets |= set(cgroup.pids())
    for target in targets:
        try:
            os.kill(target, signum)
        except ProcessLookupError:
            pass
    if frozen and (signum == _signal.SIGKILL or not paused):
        try:
            cgroup.thaw()
        except OciError:
            pass
    return targets


def _stop(pid: int, cgroup: Any, reap: bool) -> None:
    """SIGKILL the init and everything in the cgroup, and wait until they are gone."""
    signal_all(cgroup, _signal.SIGKILL, pid)
    if reap and pid:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    for _ in range(1250):  # up to 2.5 s, looking every 2 ms: killed processes are usually gone within a few
        if not cgroup.pids() and (not pid or process_start_time(pid) is None):
            return
        time.sleep(0.002)


def start(store: StateStore, container_id: str) -> Container:
    """Let the waiting init run startContainer hooks and exec the process; then poststart hooks, the first
    failing one an error that stops the container."""
    with store.lock(container_id):
        container = store.load(container_id)
        status = container.status()
        if status == "stopped":
            raise Conflict("cannot start a container that has stopped")
        if status != "created":
            raise Conflict(f"cannot start an already running container ({status})")
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            path = os.path.join(container.directory, "exec.sock")
            try:
                if len(path) < 100:
                    sock.connect(path)
                else:  # longer than sun_path (Docker's runtime root with a 64-hex id)
                    from oci.linux import unixsock

                    unixsock.connect(sock, path)
            except OSError:
                raise Conflict("container not running: its init is not waiting for start") from None
            os.unlink(os.path.join(container.directory, "exec.sock"))
            reply = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
        finally:
            sock.close()
        if reply:
            raise OciError(f"start: {reply.decode(errors='replace')}")
        if container.hooks.get("poststart"):
            from oci.runtime import hooks

            try:
                hooks.run_hooks(container.hooks, "poststart", container.spec_state("running"))
            except hooks.HookError:
                # runtime.md#lifecycle step 9 (spec 1.3, as runc always did): a failing poststart hook is an
                # error that stops the container; `delete` then goes on with steps 12 and 13.
                from oci.linux import cgroups

                _stop(container.pid, cgroups.manager(container.cgroup_path), True)
                raise
    return container


def signal_numbers() -> dict[str, int]:
    """Signal names without the SIG prefix -> numbers (the SIG* constants signal.Signals is made of)."""
    return {name[3:]: value for name, value in vars(_signal).items()
            if name.startswith("SIG") and not name.startswith("SIG_") and isinstance(value, int)}


def parse_signal(text: str) -> int:
    """A signal from a number, a name (KILL) or a SIG-name (SIGKILL), as runc accepts them."""
    if text.isdigit():
        number = int(text)
        if not 0 < number < _signal.NSIG:
            raise InvalidInput(f"invalid signal: {text}")
        return number
    name = text.upper().removeprefix("SIG")
    if name.startswith("RTMIN") or name.startswith("RTMAX"):
        base = _signal.SIGRTMIN if name.startswith("RTMIN") else _signal.SIGRTMAX
        offset = name[5:]
        try:
            return int(base) + (int(offset) if offset else 0)
        except ValueError:
            pass
    numbers = signal_numbers()
    if name in numbers:
        return numbers[name]
    raise InvalidInput(f"invalid signal: {text}")


def signal_name(number: int) -> str:
    """The name parse_signal reads back: SIGTERM for 15, SIGRTMIN+2 for a real-time signal (what
    signal.Signals(number).name gives, without importing enum, and for every number)."""
    names = {value: name for name, value in signal_numbers().items() if name not in ("IOT", "CLD", "POLL")}
    if number in names:
        return "SIG" + names[number]
    if int(_signal.SIGRTMIN) < number < int(_signal.SIGRTMAX):
        return f"SIGRTMIN+{number - int(_signal.SIGRTMIN)}"
    return f"SIG{number}"


def kill(store: StateStore, container_id: str, signum: int, all_processes: bool = False) -> None:
    """Send `signum` to the container's init (or, with all_processes, to every process in its cgroup)."""
    container = store.load(container_id)
    if all_processes:
        from oci.linux import cgroups

        cgroup = cgroups.manager(container.cgroup_path)
        if not cgroup.pids() and not container.alive():
            raise Conflict("container not running")
        signal_all(cgroup, signum)
        return
    if not container.alive():
        raise Conflict("container not running")
    try:
        os.kill(container.pid, signum)
    except ProcessLookupError:
        raise Conflict("container not running") from None


def delete(store: StateStore, container_id: str, force: bool = False) -> None:
    """Remove a stopped (or created, or with force any) container; poststop hooks (failures are warnings)."""
    from oci.linux import cgroups

    with store.lock(container_id):
        container = store.load(container_id)
        status = container.status()
        if status not in ("stopped", "created") and not force:
            raise Conflict(f"cannot delete container {container_id} that is not stopped: {status}")
        cgroup = cgroups.manager(container.cgroup_path)
        if status != "stopped" or cgroup.pids():
            _stop(container.pid if container.alive() else 0, cgroup, False)
        try:
            cgroup.destroy()
        except OSError as err:
            if err.errno != errno.ENOENT:
                raise
        store.remove(container_id)
    _hooks_warn(container, "poststop", "stopped")


def _hooks_warn(container: Container, phase: str, status: str) -> None:
    """Run the container's `phase` hooks, failures as warnings (oci.log); the hooks module is imported only if
    there are any."""
    if not container.hooks.get(phase):
        return
    from oci.runtime import hooks

    hooks.run_hooks_warn(container.hooks, phase, container.spec_state(status))


FORWARDED = (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP, _signal.SIGQUIT, _signal.SIGUSR1, _signal.SIGUSR2,
             _signal.SIGWINCH)


def wait_in_foreground(pid: int, master: int | None = None) -> int:
    """Stay with `pid` until it exits, as `runc run` and `runc exec` do: the signals a terminal or a
    supervisor sends us go to it (a window change resizes its terminal instead), its terminal's
    master, when it has one, is proxied to ours; its exit status as a shell shows it (wait_exit)."""

    def forward(signum: int, _frame: Any) -> None:
        if signum == _signal.SIGWINCH and master is not None:
            from oci.linux import terminal

            terminal.copy_size(0, master)  # the kernel tells the process's foreground group
            return
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for signum in FORWARDED:
        _signal.signal(signum, forward)
    if master is not None:
        from oci.linux import terminal

        terminal.proxy(master)
    return wait_exit(pid)


def wait_exit(pid: int) -> int:
    """Reap `pid` (our child through the subreaper) and every orphan; its exit status as a shell shows it."""
    while True:
        try:
            reaped, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 255
        except InterruptedError:
            continue
        if reaped == pid:
            return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
