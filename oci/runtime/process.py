"""What runs in the container's processes, from fork to exec.

Stage A (forked by the runtime) enters or creates the namespaces and forks stage B,
which becomes the container's init (pid 1 of a new pid namespace); without a user or time
namespace the runtime forks B itself (fork_init), and B enters its namespaces. B builds the rootfs,
pivots into it, then waits on exec.sock until `start` connects, and finally sets up the
process (rlimits, user, capabilities, no_new_privs, seccomp last) and execs it. Both
stages are not dumpable while they hold host resources, and nothing but stdio and
--preserve-fds survives the exec.
"""

from __future__ import annotations

import _signal  # not signal nor socket, which build enums: see lifecycle
import _socket
import os
import sys

from oci.linux import namespaces
from oci.linux.kernel import (
    CLONE_NEWCGROUP,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    IOPRIO_WHO_PROCESS,
    PR_SET_DUMPABLE,
    PR_SET_KEEPCAPS,
    PR_SET_NO_NEW_PRIVS,
    RLIMITS,
    kernel,
)
from oci.runtime.channel import Channel

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
SCHED_POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3, "SCHED_ISO": 4,
                  "SCHED_IDLE": 5, "SCHED_DEADLINE": 6}
SCHED_FLAGS = {"SCHED_FLAG_RESET_ON_FORK": 1, "SCHED_FLAG_RECLAIM": 2, "SCHED_FLAG_DL_OVERRUN": 4,
               "SCHED_FLAG_KEEP_POLICY": 8, "SCHED_FLAG_KEEP_PARAMS": 16, "SCHED_FLAG_UTIL_CLAMP_MIN": 32,
               "SCHED_FLAG_UTIL_CLAMP_MAX": 64}
PERSONALITIES = {"LINUX": 0x0000, "LINUX32": 0x0008}
WAIT_SIGNALS = (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP, _signal.SIGQUIT, _signal.SIGUSR1, _signal.SIGUSR2)


class InitOptions:
    """Everything the container's init needs, decided by the runtime before fork."""

    def __init__(self, config: dict[str, Any], bundle: str, exec_listener: Any, no_pivot: bool,
                 preserve_fds: int, console_fd: int | None, cgroup_binds: list[tuple[str, str]],
                 seccomp_filter: Any = None, idmapped: dict[int, int] | None = None) -> None:
        self.config, self.bundle, self.exec_listener, self.no_pivot = config, bundle, exec_listener, no_pivot
        self.preserve_fds, self.console_fd, self.cgroup_binds = preserve_fds, console_fd, cgroup_binds
        self.seccomp_filter = seccomp_filter
        self.idmapped = idmapped or {}  # mount index -> a detached idmapped mount (oci.linux.idmap)


class InitFailure(Exception):
    """A setup step in the container's init failed."""


def report_failure(channel: Channel | None, message: str) -> NoReturn:
    if channel is not None:
        try:
            channel.send("error", message=message)
        except OSError:
            pass
    else:
        sys.stderr.write(f"oci-run: {message}\n")
        sys.stderr.flush()
    os._exit(1)


def describe_error(err: BaseException) -> str:
    """One line for a failure in the container's processes (an OSError: its errno's text and file)."""
    if isinstance(err, OSError) and err.strerror:
        text = err.strerror + (f": {err.filename}" if err.filename else "")
    else:
        text = getattr(err, "message", None) or " ".join(str(err).split()) or type(err).__name__
    if os.environ.get("OCI_RUN_DEBUG"):
        import traceback

        text += "\n" + "".join(traceback.format_exception(err))
    return text


def preload(process: dict[str, Any], hooks: dict[str, Any] | None = None) -> None:
    """Import what the container's processes need later; the runtime calls it before it forks them.

    Once in a user namespace, or after pivot_root, the runtime's own files may be out of reach
    (a checkout in a 0700 folder, a path the container cannot see). And before the fork the
    imports cost what they cost; in a forked child each page they touch is copied first.
    """
    import oci.linux.capabilities  # noqa: F401
    import oci.linux.mounts  # noqa: F401

    kernel().load()
    if process.get("terminal"):
        import oci.linux.terminal  # noqa: F401
    if hooks and (hooks.get("createContainer") or hooks.get("startContainer")):  # hooks the init runs
        import oci.jsonout  # noqa: F401
        import oci.runtime.hooks  # noqa: F401


def forks_init_directly(ns: namespaces.Namespaces) -> bool:
    """Whether the runtime can fork the container's init itself, without stage A: not with a user
    namespace (the id maps are written between its unshare and the others', which it must own),
    a new time namespace (its offsets go in between unshare and the first child), or a pid
    namespace to join. One Python fork less is ~1 ms less, and runtimes start often."""
    return not ns.has("user") and "time" not in ns.new and "pid" not in ns.join


def fork_init(channel: Channel, other_end: Channel, opts: InitOptions, ns: namespaces.Namespaces) -> int:
    """Fork the container's init straight from the runtime (see forks_init_directly); its pid.

    unshare(CLONE_NEWPID) moves nobody, it only makes the next child pid 1 of a new pid
    namespace; the runtime takes its own back right after the fork. The init enters the other
    namespaces itself, then goes on as stage B.
    """
    own_pid_ns = None
    if "pid" in ns.new:
        own_pid_ns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        kernel().unshare(CLONE_NEWPID)
    try:
        pid = os.fork()
        if pid == 0:
            other_end.close()
            _enter_namespaces_as_init(channel, opts, ns)
    finally:
        if own_pid_ns is not None:
            kernel().setns(own_pid_ns, CLONE_NEWPID)
            os.close(own_pid_ns)
    return pid


def _enter_namespaces_as_init(channel: Channel, opts: InitOptions, ns: namespaces.Namespaces) -> NoReturn:
    """The init forked by fork_init: join the namespaces named by path, create the new ones, then stage B."""
    try:
        kernel().prctl(PR_SET_DUMPABLE, 0)
        for kind, fd in ns.open_joins().items():  # every path opened before any namespace changes
            namespaces.join(kind, fd)
        # As in stage A, the cgroup namespace waits until the runtime has moved the init into its cgroup.
        flags = ns.unshare_flags(exclude=("pid", "cgroup"))
        if flags:
            kernel().unshare(flags)
    except BaseException as err:  # noqa: BLE001 - every failure goes back to the runtime
        report_failure(channel, describe_error(err))
    stage_b(channel, opts, ns)


def stage_a(channel: Channel, opts: InitOptions) -> NoReturn:
    """Enter the namespaces, fork the container's init, report its pid, exit."""
    try:
        kern = kernel()
        kern.prctl(PR_SET_DUMPABLE, 0)
        linux = opts.config["linux"]
        channel.recv("go")
        ns = namespaces.Namespaces(linux.get("namespaces", []))
        fds = ns.open_joins()
        if "user" in fds:
            namespaces.join("user", fds.pop("user"))
        if "user" in ns.new:
            kern.unshare(CLONE_NEWUSER)
            channel.send("userns")
            channel.recv("mapped")
        if ns.has("user"):
            try:
                kern.setresgid(0)
                kern.setresuid(0)
            except OSError:
                pass
        for kind, fd in fds.items():
            namespaces.join(kind, fd)
        # The cgroup namespace is made by the init itself once the runtime has moved it into its
        # cgroup: that move (slow on cgroup v1) overlaps with the rootfs preparation.
        flags = ns.unshare_flags(exclude=("user", "cgroup"))
        if flags:
            kern.unshare(flags)
        if "time" in ns.new and linux.get("timeOffsets"):
            namespaces.write_time_offsets(linux["timeOffsets"])
        # The init waits until its pid is reported: the runtime reads "pid" before any message of the init.
        hold_read, hold_write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(hold_write)
            os.read(hold_read, 1)
            os.close(hold_read)
            stage_b(channel, opts, ns)
        os.close(hold_read)
        channel.send("pid", pid=pid)
        os.close(hold_write)
    except BaseException as err:  # noqa: BLE001 - every failure goes back to the runtime
        report_failure(channel, describe_error(err))
    os._exit(0)


def _on_wait_signal(signum: int, _frame: Any) -> None:
    os._exit(128 + signum)


def stage_b(channel: Channel, opts: InitOptions, ns: namespaces.Namespaces) -> NoReturn:
    """The container's init: rootfs, hooks, pivot, wait for start, then exec the process."""
    from oci.linux.mounts import RootfsBuilder

    config = opts.config
    config_hooks = config.get("hooks") or {}
    # config.md#process: OPTIONAL at create, REQUIRED when start is called (runtime.md#start): without
    # one the init does all the rest and waits, and `start` gets the error.
    process = config.get("process")
    linux = config["linux"]
    for signum in WAIT_SIGNALS:
        _signal.signal(signum, _on_wait_signal)
    try:
        warnings: list[str] = []
        if process is not None and process.get("capabilities"):
            from oci.linux.capabilities import grantable_only

            process["capabilities"], warnings = grantable_only(process["capabilities"])
        affinity = (process or {}).get("execCPUAffinity") or {}
        if affinity.get("initial"):
            os.sched_setaffinity(0, cpu_set(affinity["initial"]))
        if "network" in ns.new:
            namespaces.loopback_up()  # as runc: lo is up in a new network namespace, before any hook runs
        builder = RootfsBuilder(config, opts.bundle, lambda: opts.cgroup_binds, ns.has("user"), ns.has("mount"))
        builder.idmapped = opts.idmapped
        builder.prepare()
        if process is not None and "oomScoreAdj" in process:
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write(str(process["oomScoreAdj"]))
        listener = opts.exec_listener
        channel.send("hooks", warnings=warnings)
        state = channel.recv("state")["state"]
        if "cgroup" in ns.new:
            kernel().unshare(CLONE_NEWCGROUP)
        if config_hooks.get("createContainer"):
            from oci.runtime import hooks

            hooks.run_hooks(config_hooks, "createContainer", state)
        builder.pivot(opts.no_pivot)
        for key, value in (linux.get("sysctl") or {}).items():
            with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
                f.write(value)
        builder.finish()
        if "hostname" in config and ns.has("uts"):
            kernel().sethostname(config["hostname"])
        if "domainname" in config and ns.has("uts"):
            kernel().setdomainname(config["domainname"])
        if process is None:
            channel.send("ready")
            channel.close()
            _wait_for_start(listener).send(b"config.json: /process: none to run")
            os._exit(1)
        if process.get("terminal"):
            from oci.linux import terminal

            master, slave = terminal.open_console(process.get("consoleSize"))
            terminal.send_master(opts.console_fd, master)  # type: ignore[arg-type]
            os.close(master)
            terminal.make_controlling(slave)
        os.chdir(process.get("cwd", "/"))
        env = process.get("env") or []
        executable = find_executable(process["args"][0], env)
        set_rlimits(process)
        channel.send("ready")
        channel.close()
    except BaseException as err:  # noqa: BLE001
        report_failure(channel, describe_error(err))
    conn = _wait_for_start(listener)
    try:
        if config_hooks.get("startContainer"):
            from oci.runtime import hooks

            hooks.run_hooks(config_hooks, "startContainer", {**state, "status": "created"})
        finalize(process, linux.get("personality"), opts.seccomp_filter, opts.preserve_fds, keep=conn.fileno(),
                 rlimits_set=True)
        os.execve(executable, process["args"], environment(env))
    except BaseException as err:  # noqa: BLE001
        try:
            conn.send(describe_error(err).encode())
        finally:
            os._exit(1)
    os._exit(127)


def _wait_for_start(listener: Any) -> Any:
    """Block until `start` connects to exec.sock; the connection, whose other end `start` reads."""
    try:
        conn_fd, _ = listener._accept()  # _socket's accept: a close-on-exec fd
    except BaseException as err:  # noqa: BLE001
        report_failure(None, f"waiting for start: {describe_error(err)}")
    listener.close()
    return _socket.socket(fileno=conn_fd)


def cpu_set(text: str) -> set[int]:
    """The CPUs of a kernel cpu list (`0-3,7`)."""
    cpus: set[int] = set()
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


def close_inherited(first: int, keep: int) -> None:
    """Close every fd from `first` on but `keep`: close_range(2), or, where that is refused (ENOSYS on an
    old kernel, EPERM from a seccomp filter without it), each fd /proc/self/fd lists, as runc falls back."""
    close_range = kernel().close_range
    try:
        if keep >= first:
            if keep > first:
                close_range(first, keep - 1)
            close_range(keep + 1)
        else:
            close_range(first)
        return
    except OSError:
        pass
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd >= first and fd != keep:
            try:
                os.close(fd)
            except OSError:
                pass


def security_labels(process: dict[str, Any]) -> None:
    """The process's AppArmor profile and SELinux label, for the exec to come (oci.runtime.config refuses
    them where the host has neither LSM)."""
    if process.get("apparmorProfile"):
        _write_attr(("/proc/self/attr/apparmor/exec", "/proc/self/attr/exec"), f"exec {process['apparmorProfile']}")
    if process.get("selinuxLabel"):
        _write_attr(("/proc/self/attr/exec",), process["selinuxLabel"])


def _write_attr(paths: tuple[str, ...], value: str) -> None:
    for path in paths:
        try:
            with open(path, "w") as f:
                f.write(value)
            return
        except FileNotFoundError:
            continue
    raise InitFailure(f"{paths[0]}: no such file (cannot set {value!r})")


def find_executable(name: str, env: list[str]) -> str:
    """The path exec will run: `name` itself if it has a slash, else the first match in the container's PATH."""
    if "/" in name:  # runc's words, which engines read (podman: exit 127 for "no such file", 126 otherwise)
        try:
            st = os.stat(name)
        except OSError as err:
            raise InitFailure(f'exec: "{name}": stat {name}: {(err.strerror or "").lower()}') from None
        if not (st.st_mode & 0o170000 == 0o100000 and os.access(name, os.X_OK)):
            raise InitFailure(f'exec: "{name}": permission denied')
        return name
    path = next((item[5:] for item in env if item.startswith("PATH=")), "/usr/local/bin:/usr/bin:/bin")
    for folder in path.split(":"):
        candidate = os.path.join(folder or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise InitFailure(f'exec: "{name}": executable file not found in $PATH')


def environment(env: list[str]) -> dict[str, str]:
    result = dict(item.partition("=")[::2] for item in env)
    result.setdefault("HOME", "/")
    return result


def set_rlimits(process: dict[str, Any]) -> None:
    """process.rlimits (runc sets them at create too: a limit the host refuses fails `create`)."""
    for limit in process.get("rlimits") or []:
        number = RLIMITS.get(limit["type"])
        if number is None:
            raise InitFailure(f"/process/rlimits: unknown rlimit {limit['type']}")
        try:
            kernel().setrlimit(number, limit["soft"], limit["hard"])
        except OSError as err:
            raise InitFailure(f"setrlimit {limit['type']}: {os.strerror(err.errno or 0)}") from None


def finalize(process: dict[str, Any], personality: dict[str, Any] | None, seccomp_filter: Any, preserve_fds: int,
             keep: int, rlimits_set: bool = False) -> None:
    """Set up the process: limits (unless `rlimits_set`), scheduling, user, capabilities, no_new_privs, fds,
    then seccomp."""
    from oci.linux.capabilities import CapabilitySets

    kern = kernel()
    if not rlimits_set:
        set_rlimits(process)
    if personality is not None:
        domain = personality.get("domain", "LINUX")
        if domain not in PERSONALITIES:
            raise InitFailure(f"/linux/personality/domain: unknown domain {domain}")
        kern.personality(PERSONALITIES[domain])
    if "ioPriority" in process:
        io = process["ioPriority"]
        kern.ioprio_set(IOPRIO_WHO_PROCESS, 0, (IOPRIO_CLASSES[io["class"]] << 13) | io.get("priority", 0))
    if "scheduler" in process:
        sched = process["scheduler"]
        kern.sched_setattr(SCHED_POLICIES[sched["policy"]], sum(SCHED_FLAGS[f] for f in sched.get("flags", [])),
                           sched.get("nice", 0), sched.get("priority", 0), sched.get("runtime", 0),
                           sched.get("deadline", 0), sched.get("period", 0))
    caps = CapabilitySets(process.get("capabilities"))
    no_new_privs = bool(process.get("noNewPrivileges"))
    # Inherited fds go first: the seccomp filter need not allow close_range (or close) after it.
    first = 3 + preserve_fds
    for fd in range(3, first):
        try:
            os.set_inheritable(fd, True)
        except OSError:
            pass
    close_inherited(first, keep)
    security_labels(process)
    if seccomp_filter is not None and not no_new_privs:
        # Without no_new_privs loading a filter needs CAP_SYS_ADMIN: do it before the drop.
        kern.load_seccomp(seccomp_filter)
    caps.drop_bounding()
    kern.prctl(PR_SET_KEEPCAPS, 1)
    user = process.get("user", {})
    uid, gid = user.get("uid", 0), user.get("gid", 0)
    try:
        kern.setgroups(user.get("additionalGids") or [])
    except PermissionError:
        if user.get("additionalGids"):
            raise
    kern.setresgid(gid)
    kern.setresuid(uid)
    kern.prctl(PR_SET_KEEPCAPS, 0)
    caps.apply()
    os.umask(user.get("umask", 0o022))
    if no_new_privs:
        kern.prctl(PR_SET_NO_NEW_PRIVS, 1)
    for signum in range(1, _signal.NSIG):
        # Python knows every disposition (it reads them all at start-up): reset only those not yet default.
        if signum not in (_signal.SIGKILL, _signal.SIGSTOP) and _signal.getsignal(signum) != _signal.SIG_DFL:
            try:
                _signal.signal(signum, _signal.SIG_DFL)
            except (OSError, ValueError):
                pass
    _signal.pthread_sigmask(_signal.SIG_SETMASK, [])
    affinity = process.get("execCPUAffinity") or {}
    if affinity.get("final"):
        os.sched_setaffinity(0, cpu_set(affinity["final"]))
    if seccomp_filter is not None and no_new_privs:
        kern.load_seccomp(seccomp_filter)
