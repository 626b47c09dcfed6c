"""The monitor: one process that watches over every container of a state root.

Why one process for all: a Python process costs 8-10 MB resident, conmon 1-2 MB; one monitor
holding a hundred containers costs about what one Python process does. It is the parent of
every container's init (PR_SET_CHILD_SUBREAPER: the runtime's `create` exits, its init is
reparented here), so it reaps them and learns their exit status; it reads their output from
FIFOs and pty masters in one epoll loop, drives the runtime (create, start, delete) without
waiting on it, and keeps each container's record on disk (oci.monitor.record).

What it risks, and how that is bounded:

* The monitor dying (killed, crashed) does not stop the containers. Their stdout and stderr are
  FIFOs they hold open read-write, so a write never meets a closed pipe (no SIGPIPE); output
  waits in the pipe (64 KiB) until a monitor reads again. Records on disk are whole (atomic
  replace). `oci-mon ps` tells such containers as unmonitored; the next monitor adopts them:
  it checks each recorded pid and its start time, watches it through a pidfd and reads the same
  FIFOs again. It is not their parent, so the exit code of an adopted container is unknown.
  A terminal container loses its pty master with the monitor (the kernel hangs the terminal
  up) and an interactive one its stdin: as under conmon.
* A slow runtime never blocks the loop: runtime commands are children like the containers,
  and their end is an event. A full log disk drops records (counted, recorded, warned), never
  blocks a container.
"""

from __future__ import annotations

import errno
import fcntl
import heapq
import os
import select
import signal
import socket
import stat
import struct
import time
import traceback

from oci.errors import Conflict, InvalidInput, NotFound, OciError
from oci.monitor import crilog, events, oom, policy, proto, record, times
from oci.monitor.paths import Root
from oci.monitor.runtimes import Runtime, last_error

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

IDLE_TIMEOUT = 30.0  # a monitor started on demand leaves this long after its last container stopped
LOG_MAX = 1 << 20
SEND_MAX = 1 << 20  # output buffered for a slow attached client before it misses some
READ_SIZE = 1 << 16
OPS = ("run", "start", "stop", "restart", "kill", "rm", "wait", "attach", "ping")
SPAWN_SIGDEF = (signal.SIGPIPE, signal.SIGHUP, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM)


def boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def start_time(pid: int) -> int | None:
    from oci.runtime.state import process_start_time

    return process_start_time(pid)


def decode_status(status: int) -> tuple[int, str | None]:
    """(exit code as a shell shows it, the signal's name or None) of a wait status."""
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        return 128 + number, signal_name(number)
    return os.WEXITSTATUS(status), None


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"SIG{number}"


class Timer:
    __slots__ = ("when", "callback", "cancelled")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when, self.callback, self.cancelled = when, callback, False

    def cancel(self) -> None:
        self.cancelled = True


class Timers:
    """Callbacks due at monotonic times."""

    def __init__(self) -> None:
        self.heap: list[tuple[float, int, Timer]] = []
        self.count = 0

    def after(self, delay: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(time.monotonic() + max(0.0, delay), callback)
        self.count += 1
        heapq.heappush(self.heap, (timer.when, self.count, timer))
        return timer

    def timeout(self) -> float | None:
        while self.heap and self.heap[0][2].cancelled:
            heapq.heappop(self.heap)
        return max(0.0, self.heap[0][0] - time.monotonic()) if self.heap else None

    def due(self) -> list[Timer]:
        now = time.monotonic()
        found = []
        while self.heap and self.heap[0][0] <= now:
            timer = heapq.heappop(self.heap)[2]
            if not timer.cancelled:
                found.append(timer)
        return found


class Conn:
    """A client connection: one request, its answer, then frames if it attached."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.inbuf = b""
        self.out = bytearray()
        self.asked = False
        self.closing = False
        self.frames: proto.Frames | None = None
        self.watched: Watched | None = None
        self.stdin = False
        self.missed = 0


class Watched:
    """What the monitor holds for one container besides its record."""

    def __init__(self, rec: dict[str, Any]) -> None:
        self.rec = rec
        self.id: str = rec["id"]
        self.phase = "exited"  # creating, starting, running, restarting, exited
        self.pid = 0
        self.child = False  # our child: its exit status will be known
        self.pidfd = -1  # for an adopted container
        self.streams: dict[int, str] = {}  # fd -> stdout/stderr (FIFO readers, or the pty master as stdout)
        self.master = -1
        self.stdin = -1
        self.stdin_pending = b""
        self.console: socket.socket | None = None
        self.console_path = ""
        self.got_terminal = False  # the runtime sent the pty master of this run
        self.writer: crilog.LogWriter | None = None
        self.attached: list[Conn] = []
        self.on_exit: list[Callable[[int | None], None]] = []
        self.kill_timer: Timer | None = None
        self.restart_timer: Timer | None = None
        self.backoff = policy.Backoff()
        self.early_exit: int | None = None
        self.deleting = False
        self.after_delete: list[Callable[[], None]] = []
        self.removing: list[Callable[[], None]] | None = None
        self.started = 0.0
        self.exited_at = 0.0
        self.restart_delay = 0.0
        self.oom_base: int | None = None
        self.log_offset = 0
        self.dirty = False

    @property
    def state(self) -> dict[str, Any]:
        return self.rec["state"]  # type: ignore[no-any-return]

    @property
    def config(self) -> dict[str, Any]:
        return self.rec["config"]  # type: ignore[no-any-return]


class Monitor:
    """The event loop and every container it watches."""

    def __init__(self, root: Root, idle_timeout: float | None = IDLE_TIMEOUT) -> None:
        self.root = root
        self.idle_timeout = idle_timeout
        self.poller = select.epoll()
        self.handlers: dict[int, Callable[[int], None]] = {}
        self.timers = Timers()
        self.containers: dict[str, Watched] = {}
        self.by_pid: dict[int, Watched] = {}
        self.ops: dict[int, Callable[[int], None]] = {}
        self.unclaimed: dict[int, tuple[int, float]] = {}
        self.conns: dict[int, Conn] = {}
        self.events = events.EventLog(root.events)
        self.boot = boot_id()
        self.quit = False
        self.idle_since: float | None = None
        self.devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        self.lock_fd = -1
        self.listener: socket.socket | None = None
        self.wakeup: tuple[socket.socket, socket.socket] | None = None

    # ---- start-up and the loop -------------------------------------------------------------

    def open(self) -> None:
        """Take the root's lock, become the subreaper, listen, and adopt what earlier monitors left."""
        self.root.make()
        os.chmod(self.root.path, 0o700)
        self.lock_fd = os.open(self.root.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + 5
        while True:
            try:
                fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise Conflict(f"a monitor already runs for {self.root.path}") from None
                time.sleep(0.05)
        from oci.linux import syscalls

        syscalls.prctl(syscalls.PR_SET_CHILD_SUBREAPER, 1)
        ours, theirs = socket.socketpair()
        for end in (ours, theirs):
            end.setblocking(False)
        self.wakeup = (ours, theirs)
        signal.set_wakeup_fd(theirs.fileno(), warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, self._leave)
        signal.signal(signal.SIGINT, self._leave)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        self.watch(ours.fileno(), self._on_signal)
        self.listener = proto.listen(self.root.socket)
        self.listener.setblocking(False)
        self.watch(self.listener.fileno(), self._on_listener)
        from oci.runtime.state import write_atomic

        write_atomic(self.root.pidfile, (f'{{"pid": {os.getpid()}, "startTime": {start_time(os.getpid()) or 0}, '
                                         f'"started": "{times.now()}"}}\n').encode(), 0o600)
        self.say("info", f"monitor {os.getpid()} started for {self.root.path}")
        self.adopt_all()

    def _leave(self, *_: object) -> None:
        self.quit = True

    def serve(self) -> None:
        try:
            while not self.quit:
                timeout = self.timers.timeout()
                idle = self._idle_left()
                if idle is not None:
                    timeout = idle if timeout is None else min(timeout, idle)
                try:
                    ready = self.poller.poll(-1 if timeout is None else timeout + 0.001)
                except InterruptedError:
                    continue
                for fd, mask in ready:
                    handler = self.handlers.get(fd)
                    if handler is not None:
                        self._guard(handler, mask)
                for timer in self.timers.due():
                    self._guard(lambda _mask, t=timer: t.callback(), 0)
                self.reap()
        finally:
            self.close()

    def _guard(self, handler: Callable[[int], None], mask: int) -> None:
        """Run a handler; a bug in one container's handling is logged, and the others go on."""
        try:
            handler(mask)
        except Exception:
            self.say("error", "internal error: " + traceback.format_exc().replace("\n", " | "))

    def _idle_left(self) -> float | None:
        """Seconds until an idle monitor leaves (None: it is busy, or never leaves)."""
        if self.idle_timeout is None:
            return None
        busy = (self.ops or self.conns or
                any(w.phase != "exited" or w.deleting for w in self.containers.values()))
        if busy:
            self.idle_since = None
            return None
        now = time.monotonic()
        if self.idle_since is None:
            self.idle_since = now
        left = self.idle_since + self.idle_timeout - now
        if left <= 0:
            self.say("info", "no container to watch: leaving")
            self.quit = True
        return max(0.0, left)

    def close(self) -> None:
        """Stop listening and release the lock; running containers go on, unmonitored."""
        if self.listener is not None:
            self.listener.close()
            try:
                os.unlink(self.root.socket)
            except OSError:
                pass
            try:
                os.unlink(self.root.pidfile)
            except OSError:
                pass
        for w in self.containers.values():
            if w.dirty:
                self.save(w)
            if w.writer is not None:
                w.writer.close()
        running = [w.id for w in self.containers.values() if w.phase in ("running", "creating")]
        if running:
            self.say("warning", f"leaving {len(running)} running containers unmonitored: {', '.join(running)}")
        self.say("info", f"monitor {os.getpid()} stopped")
        if self.lock_fd >= 0:
            os.close(self.lock_fd)

    def watch(self, fd: int, handler: Callable[[int], None], mask: int = select.EPOLLIN) -> None:
        self.poller.register(fd, mask)
        self.handlers[fd] = handler

    def unwatch(self, fd: int) -> None:
        if self.handlers.pop(fd, None) is not None:
            try:
                self.poller.unregister(fd)
            except OSError:
                pass

    def say(self, level: str, message: str) -> None:
        """A line in ROOT/monitor.log (rotated to monitor.log.1 past 1 MiB)."""
        line = f"{times.now()} {level}: {message}\n".encode()
        try:
            if os.stat(self.root.log).st_size > LOG_MAX:
                os.rename(self.root.log, self.root.log + ".1")
        except OSError:
            pass
        try:
            fd = os.open(self.root.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError:
            pass

    def event(self, w: Watched, action: str, **attributes: str) -> None:
        self.events.append(events.make(action, w.id, w.rec["name"], w.config["bundle"], **attributes))

    def save(self, w: Watched) -> None:
        """Replace the record; on failure (a full disk) keep it in memory and try again every second."""
        try:
            record.save(self.root, w.rec)
        except OSError as err:
            if not w.dirty:
                self.say("error", f"{w.id}: cannot write its record: {err.strerror}; will try again")
                self.timers.after(1.0, lambda: self._save_again(w))
            w.dirty = True
            return
        w.dirty = False

    def _save_again(self, w: Watched) -> None:
        if w.dirty and self.containers.get(w.id) is w:
            w.dirty = False
            self.save(w)

    # ---- children: runtime commands and containers -----------------------------------------

    def spawn(self, argv: list[str], stdio: tuple[int, int, int], done: Callable[[int], None]) -> int:
        """Start a runtime command in a session of its own; `done(wait status)` when it ends."""
        actions = [(os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate(stdio)]
        pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions, setsid=True,
                             setsigdef=SPAWN_SIGDEF)
        self.ops[pid] = done
        return pid

    def _on_signal(self, _mask: int) -> None:
        assert self.wakeup is not None
        try:
            while self.wakeup[0].recv(4096):
                pass
        except BlockingIOError:
            pass

    def reap(self) -> None:
        """Collect every child that ended: runtime commands, container inits, orphans of them."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            done = self.ops.pop(pid, None)
            if done is not None:
                self._guard(lambda _m, d=done, s=status: d(s), 0)
                continue
            w = self.by_pid.pop(pid, None)
            if w is not None:
                self._guard(lambda _m, c=w, s=status: self.exited(c, s), 0)
                continue
            now = time.monotonic()
            self.unclaimed[pid] = (status, now)
            for old in [p for p, (_, t) in self.unclaimed.items() if now - t > 60]:
                del self.unclaimed[old]

    def runtime(self, w: Watched) -> Runtime:
        rt = w.config["runtime"]
        return Runtime(rt["path"], rt.get("root"), self.root.runtime_log(w.id))

    def _runtime_output(self, w: Watched) -> int:
        path = os.path.join(self.root.container(w.id), "runtime.out")
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)

    def _failure(self, w: Watched, verb: str, status: int) -> str:
        """Why a runtime command failed: its --log, else its output, else its exit status."""
        message = last_error(self.root.runtime_log(w.id), w.log_offset)
        if not message:
            try:
                with open(os.path.join(self.root.container(w.id), "runtime.out"), "rb") as f:
                    message = f.read()[-2000:].decode(errors="replace").strip().splitlines()[-1]
            except (OSError, IndexError):
                message = ""
        code, sig = decode_status(status)
        how = f"was killed by {sig}" if sig else f"exited with {code}"
        return f"{os.path.basename(w.config['runtime']['path'])} {verb} {how}" + (f": {message}" if message else "")

    # ---- creating and starting ---------------------------------------------------------------

    def launch(self, w: Watched, done: Callable[[OciError | None], None]) -> None:
        """Create and start the container with one `runtime run --detach` (one runtime start-up fewer than create
        and start, for the same work); `done(None)` once it runs, `done(error)` if not."""
        if w.deleting:
            w.after_delete.append(lambda: self.launch(w, done))
            return
        cfg = w.config
        w.phase = "creating"
        w.early_exit = None
        w.got_terminal = False
        self._enough_fds()
        ends: list[int] = []
        try:
            if w.writer is None:
                log = cfg["log"]
                os.makedirs(os.path.dirname(log["path"]), mode=0o700, exist_ok=True)
                w.writer = crilog.LogWriter(log["path"], log["maxSize"], log["maxFiles"])
            try:
                w.log_offset = os.stat(self.root.runtime_log(w.id)).st_size
            except OSError:
                w.log_offset = 0
            pidfile = self.root.runtime_pidfile(w.id)
            try:
                os.unlink(pidfile)
            except FileNotFoundError:
                pass
            stdin = self.devnull
            if cfg["interactive"] and not cfg["tty"]:
                reader, w.stdin = os.pipe2(os.O_CLOEXEC)
                os.set_blocking(w.stdin, False)
                ends.append(reader)
                stdin = reader
            if cfg["tty"]:
                console = self._listen_console(w)
                out = self._runtime_output(w)
                ends.append(out)
                stdio = (stdin, out, out)
            else:
                console = None
                writers = self._open_fifos(w)
                ends += writers
                stdio = (stdin, writers[0], writers[1])
            argv = self.runtime(w).run(w.id, cfg["bundle"], pidfile, console)
            self.spawn(argv, stdio, lambda status: self._launched(w, status, done))
        except OSError as err:
            self._close_stdio(w)
            w.phase = "exited"
            done(OciError(f"cannot create the container: {err.strerror or err}: "
                          f"{getattr(err, 'filename', '') or cfg['runtime']['path']}"))
        finally:
            for fd in ends:
                os.close(fd)

    def _enough_fds(self) -> None:
        """Raise the soft RLIMIT_NOFILE when the watched descriptors near it. Not before: the runtime
        inherits it, and runc starts measurably slower with a high one."""
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if len(self.handlers) + 16 > soft * 3 // 4 and soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, soft * 4), hard))

    def _open_fifos(self, w: Watched) -> list[int]:
        """Open stdout and stderr FIFOs: our non-blocking readers are watched; the read-write ends for the
        container are returned (a reader always exists while it holds them, so it never gets EPIPE)."""
        writers = []
        for stream in crilog.STREAMS:
            path = self.root.fifo(w.id, stream)
            try:
                if not stat.S_ISFIFO(os.lstat(path).st_mode):
                    os.unlink(path)
                    raise FileNotFoundError
            except FileNotFoundError:
                os.mkfifo(path, 0o600)
            reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            w.streams[reader] = stream
            self.watch(reader, lambda mask, fd=reader: self._on_stream(w, fd, mask))
            writers.append(os.open(path, os.O_RDWR | os.O_CLOEXEC))
        return writers

    def _listen_console(self, w: Watched) -> str:
        """A socket where the runtime sends the pty master (runc's --console-socket protocol)."""
        path = self.root.console_socket(w.id)
        if len(path.encode()) > proto.SUN_PATH_MAX:  # the runtime connects by path: keep it short
            folder = f"/tmp/oci-mon-{os.urandom(6).hex()}"
            os.mkdir(folder, 0o700)
            path = os.path.join(folder, "console.sock")
        w.console = proto.listen(path)
        w.console.setblocking(False)
        w.console_path = path
        self.watch(w.console.fileno(), lambda _mask: self._on_console(w))
        return path

    def _on_console(self, w: Watched) -> None:
        if w.console is None:
            return
        try:
            conn, _ = w.console.accept()
        except BlockingIOError:
            return
        try:
            conn.settimeout(5)
            _, fds, _, _ = socket.recv_fds(conn, 4096, 4)
        except OSError as err:
            self.say("warning", f"{w.id}: console socket: {err}")
            fds = []
        finally:
            conn.close()
        for extra in fds[1:]:
            os.close(extra)
        if fds:
            if w.master >= 0:
                self._close_stream(w, w.master)
            w.master = fds[0]
            w.got_terminal = True
            os.set_inheritable(w.master, False)
            os.set_blocking(w.master, False)
            w.streams[w.master] = "stdout"
            self.watch(w.master, lambda mask, fd=w.master: self._on_stream(w, fd, mask))
            self._close_console(w)

    def _close_console(self, w: Watched) -> None:
        if w.console is not None:
            self.unwatch(w.console.fileno())
            w.console.close()
            w.console = None
            try:
                os.unlink(w.console_path)
                if w.console_path.startswith("/tmp/oci-mon-"):
                    os.rmdir(os.path.dirname(w.console_path))
            except OSError:
                pass

    def _launched(self, w: Watched, status: int, done: Callable[[OciError | None], None]) -> None:
        """`runtime run --detach` ended: the container runs (its init is our child now), or it failed."""
        if status != 0:
            self._abort(w, self._failure(w, "run", status), done)
            return
        try:
            with open(self.root.runtime_pidfile(w.id)) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError) as err:
            self._abort(w, f"the runtime wrote no pid file: {err}", done)
            return
        if w.config["tty"] and not w.got_terminal:
            self._on_console(w)
            if not w.got_terminal:
                self._abort(w, "the runtime sent no terminal to the console socket", done, pid)
                return
        self._close_console(w)
        w.pid, w.child = pid, True
        self.by_pid[pid] = w
        early = self.unclaimed.pop(pid, None)
        if early is not None:  # it ended before the runtime did, and was reaped as a stranger
            w.early_exit = early[0]
            self.by_pid.pop(pid, None)
        cgroup = oom.memory_cgroup(pid)
        w.oom_base = oom.oom_kills(cgroup)
        st = w.state
        st.update(status="running", pid=pid, pidStartTime=start_time(pid) or 0, bootId=self.boot,
                  startedAt=times.now(), finishedAt=None, exitCode=None, signal=None, oomKilled=False, error="",
                  monitorPid=os.getpid(), adopted=False, cgroupMemory=cgroup, oomKillsAtStart=w.oom_base or 0)
        w.phase = "running"
        w.started = time.monotonic()
        self.save(w)
        self.event(w, "start")
        done(None)
        if w.early_exit is not None:
            self.exited(w, w.early_exit)

    def _abort(self, w: Watched, message: str, done: Callable[[OciError | None], None], pid: int = 0) -> None:
        """A create or start that failed: kill what it left, delete it in the runtime, report."""
        if pid and w.child and w.early_exit is None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.by_pid.pop(pid, None)
        w.pid, w.child = 0, False
        self._close_console(w)
        self._close_stdio(w)
        w.phase = "exited"
        self.delete(w)
        done(OciError(message))

    def delete(self, w: Watched, then: Callable[[], None] | None = None) -> None:
        """`runtime delete --force` (its cgroup, its state, poststop hooks); `then` afterwards."""
        if then is not None:
            w.after_delete.append(then)
        if w.deleting:
            return
        w.deleting = True
        out = self._runtime_output(w) if os.path.isdir(self.root.container(w.id)) else self.devnull
        try:
            self.spawn(self.runtime(w).delete(w.id), (self.devnull, out, out), lambda status: self._deleted(w, status))
        except OSError as err:
            self.say("error", f"{w.id}: cannot run the runtime's delete: {err.strerror}")
            self._deleted(w, 0)
        finally:
            if out != self.devnull:
                os.close(out)

    def _deleted(self, w: Watched, status: int) -> None:
        if status != 0:
            self.say("warning", f"{w.id}: " + self._failure(w, "delete", status))
        w.deleting = False
        then, w.after_delete = w.after_delete, []
        for callback in then:
            callback()

    # ---- output ------------------------------------------------------------------------------

    def _on_stream(self, w: Watched, fd: int, mask: int) -> None:
        stream = w.streams.get(fd)
        if stream is None:
            return
        for _ in range(16):  # then let the other containers have their turn
            try:
                data = os.read(fd, READ_SIZE)
            except BlockingIOError:
                return
            except OSError:  # EIO: the pty's other side is closed
                data = b""
            if not data:
                self._close_stream(w, fd)
                return
            self.output(w, stream, data)
            if len(data) < READ_SIZE:
                return

    def output(self, w: Watched, stream: str, data: bytes) -> None:
        writer = w.writer
        if writer is not None:
            episode = writer.episode
            if writer.write(stream, data):
                if not episode:
                    self.say("warning", f"{w.id}: cannot write its log ({writer.failure}): dropping log lines")
            elif episode:
                self._report_dropped(w, episode, writer.failure)
        kind = b"o" if stream == "stdout" else b"e"
        for conn in list(w.attached):
            self.send(conn, proto.frame(kind, data), droppable=True)

    def _report_dropped(self, w: Watched, count: int, reason: str) -> None:
        self.say("warning", f"{w.id}: {count} log lines were dropped ({reason})")
        w.state["logDropped"] = w.state.get("logDropped", 0) + count
        self.event(w, "log-dropped", dropped=str(count))
        self.save(w)

    def _close_stream(self, w: Watched, fd: int) -> None:
        self.unwatch(fd)
        w.streams.pop(fd, None)
        if fd == w.master:
            w.master = -1
        os.close(fd)

    def _drain(self, w: Watched) -> None:
        """Read what the container wrote before it ended; FIFOs then close (no writer is left)."""
        for fd in list(w.streams):
            for _ in range(1024):
                if fd not in w.streams:
                    break
                try:
                    data = os.read(fd, READ_SIZE)
                except BlockingIOError:
                    break
                except OSError:
                    data = b""
                if not data:
                    self._close_stream(w, fd)
                    break
                self.output(w, w.streams[fd], data)

    def _close_stdio(self, w: Watched) -> None:
        for fd in list(w.streams):
            self._close_stream(w, fd)
        if w.stdin >= 0:
            os.close(w.stdin)
            w.stdin = -1
            w.stdin_pending = b""

    def write_stdin(self, w: Watched, data: bytes) -> None:
        """Input for the container (a pty master or its stdin pipe); what does not fit waits, up to 1 MiB."""
        target = w.master if w.config["tty"] else w.stdin
        if target < 0:
            return
        pending = w.stdin_pending + data
        try:
            written = os.write(target, pending) if pending else 0
        except BlockingIOError:
            written = 0
        except OSError:
            return
        w.stdin_pending = pending[written:][:SEND_MAX]

    # ---- the end of a container --------------------------------------------------------------

    def exited(self, w: Watched, status: int) -> None:
        """Its init was reaped (status known)."""
        if w.phase == "creating":
            w.early_exit = status
            return
        code, sig = decode_status(status)
        self.finish(w, code, sig)

    def finish(self, w: Watched, code: int | None, sig: str | None, error: str = "") -> None:
        """Record the exit, tell whoever waits, delete it in the runtime, then restart or remove it."""
        self.by_pid.pop(w.pid, None)
        self._drain(w)
        self._close_stdio(w)
        if w.pidfd >= 0:
            self.unwatch(w.pidfd)
            os.close(w.pidfd)
            w.pidfd = -1
        if w.kill_timer is not None:
            w.kill_timer.cancel()
            w.kill_timer = None
        st = w.state
        kills = oom.oom_kills(st.get("cgroupMemory", ""))
        oomed = kills is not None and kills > (w.oom_base if w.oom_base is not None else st.get("oomKillsAtStart", 0))
        if w.writer is not None and w.writer.episode:
            self._report_dropped(w, w.writer.episode, w.writer.failure)
            w.writer.episode = 0
        st.update(pid=0, finishedAt=times.now(), exitCode=code, signal=sig, oomKilled=oomed, error=error)
        w.pid, w.child = 0, False
        w.exited_at = time.monotonic()
        ran_for = w.exited_at - w.started if w.started else 0.0
        restart = w.removing is None and policy.should_restart(
            policy.RestartPolicy.from_json(w.config["restartPolicy"]), code, st["manuallyStopped"],
            st["restartCount"])
        if restart:
            w.restart_delay = w.backoff.next(ran_for)
        w.phase = "restarting" if restart else "exited"
        st["status"] = "removing" if w.removing is not None else w.phase
        self.save(w)
        if oomed:
            self.event(w, "oom")
        self.event(w, "die", exitCode="" if code is None else str(code))
        self._tell_exit(w, code)
        then = (lambda: self._schedule_restart(w)) if restart else None
        if w.removing is not None:
            then = lambda: self.remove(w)  # noqa: E731
        self.delete(w, then)

    def _tell_exit(self, w: Watched, code: int | None) -> None:
        callbacks, w.on_exit = w.on_exit, []
        for callback in callbacks:
            callback(code)
        for conn in list(w.attached):
            self.send(conn, proto.frame(b"x", b"" if code is None else str(code).encode()))
            self.detach(conn, closing=True)

    def _schedule_restart(self, w: Watched) -> None:
        if w.phase != "restarting":
            return
        delay = w.restart_delay - (time.monotonic() - w.exited_at)
        w.restart_timer = self.timers.after(delay, lambda: self._restart(w))

    def _restart(self, w: Watched) -> None:
        w.restart_timer = None
        if w.phase != "restarting":
            return
        w.state["restartCount"] += 1
        self.event(w, "restart", restartCount=str(w.state["restartCount"]))

        def done(err: OciError | None) -> None:
            if err is not None:
                self.say("error", f"{w.id}: restart failed: {err.message}")
                w.started = 0.0
                w.phase = "running"  # for finish: it ended at once
                self.finish(w, None, None, err.message)

        self.launch(w, done)

    def remove(self, w: Watched) -> None:
        """Forget the container: its folder (record, FIFOs, default log) goes."""
        folder = self.root.container(w.id)
        if w.writer is not None:
            w.writer.close()
            w.writer = None
        for name in os.listdir(folder) if os.path.isdir(folder) else []:
            try:
                os.unlink(os.path.join(folder, name))
            except IsADirectoryError:
                import shutil

                shutil.rmtree(os.path.join(folder, name), ignore_errors=True)
            except FileNotFoundError:
                pass
        try:
            os.rmdir(folder)
        except OSError as err:
            self.say("warning", f"{w.id}: cannot remove {folder}: {err.strerror}")
        self.containers.pop(w.id, None)
        self.event(w, "destroy")
        callbacks, w.removing = w.removing or [], None
        for callback in callbacks:
            callback()

    # ---- adoption ----------------------------------------------------------------------------

    def adopt_all(self) -> None:
        """Take over what the records say: live containers are watched again, dead ones ended."""
        for container_id in self.root.ids():
            path = self.root.record(container_id)
            try:
                with open(path, "rb") as f:
                    rec = proto.decode(f.read())
                record.check_config(rec["config"], path)
                if not isinstance(rec.get("state"), dict) or rec.get("id") != container_id:
                    raise InvalidInput("/state: missing, or /id differs from the folder name")
            except (OSError, ValueError, KeyError, TypeError, OciError) as err:
                self.say("error", f"{path}: not adopted: {err}")
                continue
            w = Watched(rec)
            self.containers[container_id] = w
            try:
                self._adopt(w)
            except Exception:
                self.say("error", f"{container_id}: adoption failed: " + traceback.format_exc().replace("\n", " | "))

    def _adopt(self, w: Watched) -> None:
        st = w.state
        status = st.get("status")
        same_boot = st.get("bootId") == self.boot
        restart_policy = policy.RestartPolicy.from_json(w.config["restartPolicy"])
        if status == "removing":
            w.removing = []
            self.delete(w, lambda: self.remove(w))
            return
        if status == "created" and not st.get("startedAt"):  # a `run` that never got to run
            self.say("info", f"{w.id}: its creation was interrupted: removed")
            w.removing = []
            self.delete(w, lambda: self.remove(w))
            return
        if status in ("running", "created"):
            pid = int(st.get("pid") or 0)
            pidfd = -1
            if same_boot and pid > 0:
                try:
                    pidfd = os.pidfd_open(pid)
                except OSError:
                    pidfd = -1
            if pidfd >= 0 and start_time(pid) == st.get("pidStartTime"):
                self._watch_adopted(w, pid, pidfd)
                return
            if pidfd >= 0:
                os.close(pidfd)
            w.phase = "running"
            w.started = 0.0
            self.say("info", f"{w.id}: it ended while no monitor watched it")
            self.finish(w, None, None, "exited while no monitor watched it: exit status unknown")
            return
        if status == "restarting":
            w.phase = "restarting"
            w.restart_delay = policy.FIRST_DELAY
            w.exited_at = time.monotonic()
            self._schedule_restart(w)
            return
        w.phase = "exited"
        if not same_boot and st.get("startedAt") and policy.restart_at_boot(
                restart_policy, st.get("exitCode"), bool(st.get("manuallyStopped")), int(st.get("restartCount", 0))):
            self.say("info", f"{w.id}: started again after a reboot ({restart_policy})")
            w.phase = "restarting"
            st["status"] = "restarting"
            st["manuallyStopped"] = False
            self._restart(w)

    def _watch_adopted(self, w: Watched, pid: int, pidfd: int) -> None:
        w.pid, w.pidfd, w.child = pid, pidfd, False
        w.phase = "running"
        w.started = time.monotonic()
        w.oom_base = w.state.get("oomKillsAtStart")
        self.watch(pidfd, lambda _mask: self.finish(
            w, None, None, "exited while watched by a monitor that was not its parent: exit status unknown"))
        cfg = w.config
        log = cfg["log"]
        try:
            w.writer = crilog.LogWriter(log["path"], log["maxSize"], log["maxFiles"])
        except OSError:
            w.writer = None
        if not cfg["tty"]:
            for stream in crilog.STREAMS:
                try:
                    reader = os.open(self.root.fifo(w.id, stream), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
                except OSError:
                    continue
                w.streams[reader] = stream
                self.watch(reader, lambda mask, fd=reader: self._on_stream(w, fd, mask))
        w.state.update(adopted=True, monitorPid=os.getpid())
        if cfg["tty"]:
            w.state["error"] = "its terminal closed with the monitor that held it: output is no longer logged"
        self.save(w)
        self.say("info", f"{w.id}: adopted (pid {pid})")

    # ---- connections -------------------------------------------------------------------------

    def _on_listener(self, _mask: int) -> None:
        assert self.listener is not None
        while True:
            try:
                sock, _ = self.listener.accept()
            except BlockingIOError:
                return
            except OSError as err:
                if err.errno in (errno.EMFILE, errno.ENFILE):
                    self.say("error", "out of file descriptors: a client was refused")
                return
            if proto.peer_uid(sock) not in (0, os.getuid()):
                sock.close()
                continue
            sock.setblocking(False)
            conn = Conn(sock)
            self.conns[conn.fd] = conn
            self.watch(conn.fd, lambda mask, c=conn: self._on_conn(c, mask))

    def _on_conn(self, conn: Conn, mask: int) -> None:
        if mask & select.EPOLLOUT:
            self.flush(conn)
        if not mask & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
            return
        try:
            data = conn.sock.recv(READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.drop(conn)
            return
        if conn.frames is not None:
            try:
                frames = conn.frames.feed(data)
            except ValueError:
                self.drop(conn)
                return
            for kind, payload in frames:
                self._on_frame(conn, kind, payload)
            return
        if conn.asked:
            return
        conn.inbuf += data
        if b"\n" not in conn.inbuf:
            if len(conn.inbuf) > proto.MAX_LINE:
                self.answer(conn, {"ok": False, "error": "request too long", "code": 2})
            return
        conn.asked = True
        line = conn.inbuf.split(b"\n", 1)[0]
        try:
            doc = proto.decode(line)
            if not isinstance(doc, dict) or doc.get("op") not in OPS:
                raise InvalidInput(f"request: unknown operation {doc.get('op') if isinstance(doc, dict) else doc!r}")
            getattr(self, "op_" + doc["op"])(conn, doc)
        except ValueError as err:
            self.answer(conn, {"ok": False, "error": f"request: not JSON: {err}", "code": 2})
        except OciError as err:
            self.answer(conn, proto.error_answer(err))
        except Exception as err:
            self.say("error", "internal error: " + traceback.format_exc().replace("\n", " | "))
            self.answer(conn, proto.error_answer(err))

    def send(self, conn: Conn, data: bytes, droppable: bool = False) -> None:
        if conn.fd not in self.conns:
            return
        if droppable and len(conn.out) > SEND_MAX:
            conn.missed += len(data)
            return
        conn.out += data
        self.flush(conn)

    def flush(self, conn: Conn) -> None:
        if conn.fd not in self.conns:
            return
        try:
            while conn.out:
                sent = conn.sock.send(conn.out)
                del conn.out[:sent]
        except BlockingIOError:
            pass
        except OSError:
            self.drop(conn)
            return
        mask = select.EPOLLIN | (select.EPOLLOUT if conn.out else 0)
        try:
            self.poller.modify(conn.fd, mask)
        except OSError:
            pass
        if conn.closing and not conn.out:
            self.drop(conn)

    def answer(self, conn: Conn, doc: dict[str, Any], keep: bool = False) -> None:
        """Send an answer; the connection closes once it is out, unless it goes on (attach)."""
        conn.closing = not keep
        self.send(conn, proto.encode(doc))

    def drop(self, conn: Conn) -> None:
        if self.conns.pop(conn.fd, None) is None:
            return
        self.unwatch(conn.fd)
        if conn.watched is not None:
            self.detach(conn)
        conn.sock.close()

    def detach(self, conn: Conn, closing: bool = False) -> None:
        w = conn.watched
        if w is None:
            return
        conn.watched = None
        conn.frames = None
        if conn in w.attached:
            w.attached.remove(conn)
            if w.id in self.containers:
                self.event(w, "detach")
        if closing:
            conn.closing = True
            self.flush(conn)

    def _on_frame(self, conn: Conn, kind: bytes, payload: bytes) -> None:
        w = conn.watched
        if w is None:
            return
        if kind == b"i" and conn.stdin:
            self.write_stdin(w, payload)
        elif kind == b"w" and w.master >= 0 and len(payload) == 4:
            rows, cols = struct.unpack(">HH", payload)
            import termios

            try:
                fcntl.ioctl(w.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            except OSError:
                pass
        elif kind == b"k" and payload.isdigit():
            self.signal(w, int(payload))

    # ---- operations --------------------------------------------------------------------------

    def get(self, doc: dict[str, Any]) -> Watched:
        container_id = doc.get("id")
        w = self.containers.get(container_id) if isinstance(container_id, str) else None
        if w is None:
            raise NotFound(f"no such container: {container_id}")
        return w

    def signal(self, w: Watched, signum: int) -> None:
        try:
            if w.child and w.pid:
                os.kill(w.pid, signum)  # our child stays ours until we reap it: the pid cannot be reused
            elif w.pidfd >= 0:
                signal.pidfd_send_signal(w.pidfd, signum)
        except ProcessLookupError:
            pass

    def op_ping(self, conn: Conn, doc: dict[str, Any]) -> None:
        self.answer(conn, {"ok": True, "pid": os.getpid(), "containers": len(self.containers)})

    def op_run(self, conn: Conn, doc: dict[str, Any]) -> None:
        from oci.runtime.state import check_id

        container_id, name = doc.get("id"), doc.get("name")
        if not isinstance(container_id, str) or not isinstance(name, str):
            raise InvalidInput("request: id and name must be strings")
        check_id(container_id)
        check_id(name)
        config = record.check_config(doc.get("config"))
        if container_id in self.containers or os.path.exists(self.root.container(container_id)):
            raise Conflict(f"container {container_id} exists already")
        for other in self.containers.values():
            if other.rec["name"] == name:
                raise Conflict(f"the name {name} is in use by container {other.id}")
        os.mkdir(self.root.container(container_id), 0o700)
        w = Watched(record.new(container_id, name, config))
        self.containers[container_id] = w
        self.save(w)
        self.event(w, "create")

        def done(err: OciError | None) -> None:
            if err is not None:
                w.removing = [lambda: self.answer(conn, proto.error_answer(err))]
                self.delete(w, lambda: self.remove(w))
                return
            answer = {"ok": True, "id": w.id, "name": name, "pid": w.state["pid"], "status": "running"}
            if not doc.get("attach"):
                self.answer(conn, answer)
                return
            stdin = bool(doc.get("stdin", True)) and (config["tty"] or config["interactive"])
            self.answer(conn, {**answer, "tty": config["tty"], "stdin": stdin}, keep=True)
            self._attach(conn, w, stdin)

        self.launch(w, done)

    def op_start(self, conn: Conn, doc: dict[str, Any]) -> None:
        w = self.get(doc)
        if w.removing is not None:
            raise Conflict(f"container {w.id} is being removed")
        if w.phase in ("running", "creating"):
            self.answer(conn, {"ok": True, "id": w.id, "pid": w.pid, "status": w.phase})
            return
        if w.restart_timer is not None:
            w.restart_timer.cancel()
            w.restart_timer = None
        self._start_again(w, lambda err: self.answer(conn, proto.error_answer(err) if err else {
            "ok": True, "id": w.id, "pid": w.state["pid"], "status": "running"}))

    def _start_again(self, w: Watched, done: Callable[[OciError | None], None]) -> None:
        st = w.state
        st.update(manuallyStopped=False, restartCount=0)
        w.backoff.reset()

        def started(err: OciError | None) -> None:
            if err is not None:
                st.update(status="exited", error=err.message)
                self.save(w)
            done(err)

        self.launch(w, started)

    def _stop(self, w: Watched, timeout: int, then: Callable[[int | None], None]) -> None:
        """The stop signal, SIGKILL after `timeout` seconds; `then(exit code)` when it has ended."""
        st = w.state
        st["manuallyStopped"] = True
        if w.restart_timer is not None or w.phase == "restarting":
            if w.restart_timer is not None:
                w.restart_timer.cancel()
                w.restart_timer = None
            w.phase = st["status"] = "exited"
        self.save(w)
        if w.phase != "running":
            then(st.get("exitCode"))
            return
        w.on_exit.append(then)
        from oci.runtime.lifecycle import parse_signal

        signum = parse_signal(w.config["stopSignal"])
        self.signal(w, signum)
        self.event(w, "kill", signal=str(signum))

        def force() -> None:
            w.kill_timer = None
            if w.phase == "running":
                self.signal(w, signal.SIGKILL)
                self.event(w, "kill", signal=str(int(signal.SIGKILL)))

        if w.kill_timer is None:
            w.kill_timer = self.timers.after(timeout, force)

    def _timeout(self, w: Watched, doc: dict[str, Any]) -> int:
        timeout = doc.get("timeout")
        if timeout is None:
            return int(w.config["stopTimeout"])
        if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 0:
            raise InvalidInput("request: timeout must be a number of seconds (0 or more)")
        return timeout

    def op_stop(self, conn: Conn, doc: dict[str, Any]) -> None:
        w = self.get(doc)
        if w.phase == "creating":
            raise Conflict(f"container {w.id} is starting: try again")
        was_running = w.phase == "running"

        def stopped(code: int | None) -> None:
            if was_running:
                self.event(w, "stop")
            self.answer(conn, {"ok": True, "id": w.id, "exitCode": code})

        self._stop(w, self._timeout(w, doc), stopped)

    def op_restart(self, conn: Conn, doc: dict[str, Any]) -> None:
        w = self.get(doc)
        if w.phase == "creating":
            raise Conflict(f"container {w.id} is starting: try again")

        def again(_code: int | None) -> None:
            self.event(w, "restart")
            self._start_again(w, lambda err: self.answer(conn, proto.error_answer(err) if err else {
                "ok": True, "id": w.id, "pid": w.state["pid"], "status": "running"}))

        self._stop(w, self._timeout(w, doc), again)

    def op_kill(self, conn: Conn, doc: dict[str, Any]) -> None:
        from oci.runtime.lifecycle import parse_signal

        w = self.get(doc)
        signum = parse_signal(str(doc.get("signal") or "KILL"))
        if w.phase != "running":
            raise Conflict(f"container {w.id} is not running")
        if signum == signal.SIGKILL or signum == parse_signal(w.config["stopSignal"]):
            w.state["manuallyStopped"] = True  # Docker: such a kill ends the restart policy's say
            self.save(w)
        self.signal(w, signum)
        self.event(w, "kill", signal=str(signum))
        self.answer(conn, {"ok": True, "id": w.id, "signal": signum})

    def op_rm(self, conn: Conn, doc: dict[str, Any]) -> None:
        w = self.get(doc)
        if w.removing is not None:
            w.removing.append(lambda: self.answer(conn, {"ok": True, "id": w.id}))
            return
        if w.phase in ("running", "creating") and not doc.get("force"):
            raise Conflict(f"container {w.id} is running: stop it first, or remove it with -f")
        if w.phase == "creating":
            raise Conflict(f"container {w.id} is starting: try again")
        w.removing = [lambda: self.answer(conn, {"ok": True, "id": w.id})]
        w.state["status"] = "removing"
        self.save(w)
        if w.restart_timer is not None:
            w.restart_timer.cancel()
            w.restart_timer = None
        if w.phase == "running":
            w.state["manuallyStopped"] = True
            self.signal(w, signal.SIGKILL)
            return  # finish() deletes, then removes
        w.phase = "exited"
        self.delete(w, lambda: self.remove(w))

    def op_wait(self, conn: Conn, doc: dict[str, Any]) -> None:
        w = self.get(doc)
        if w.phase in ("running", "creating"):
            w.on_exit.append(lambda code: self.answer(conn, {"ok": True, "id": w.id, "exitCode": code}))
            return
        self.answer(conn, {"ok": True, "id": w.id, "exitCode": w.state.get("exitCode")})

    def op_attach(self, conn: Conn, doc: dict[str, Any]) -> None:
        w = self.get(doc)
        if w.phase != "running":
            raise Conflict(f"cannot attach to container {w.id}: it is not running")
        self.answer(conn, {"ok": True, "id": w.id, "tty": w.config["tty"],
                           "stdin": bool(doc.get("stdin", True)) and (w.config["tty"] or w.config["interactive"])},
                    keep=True)
        self._attach(conn, w, bool(doc.get("stdin", True)))

    def _attach(self, conn: Conn, w: Watched, stdin: bool) -> None:
        conn.frames = proto.Frames()
        conn.watched = w
        conn.stdin = stdin and (w.config["tty"] or w.config["interactive"])
        w.attached.append(conn)
        self.event(w, "attach")
        if w.phase == "exited":  # it ended between its start and this attach
            self.send(conn, proto.frame(b"x", str(w.state.get("exitCode")).encode()))
            self.detach(conn, closing=True)


def serve(root: Root, idle_timeout: float | None, ready: Callable[[str], None] | None = None) -> None:
    """Run a monitor for `root` until it is told to leave (or is idle for `idle_timeout` seconds)."""
    monitor = Monitor(root, idle_timeout)
    try:
        monitor.open()
    except BaseException as err:
        if ready is not None:
            ready(f"error: {err}")
        raise
    if ready is not None:
        ready("ready")
    monitor.serve()


def daemonize(root: Root, idle_timeout: float | None) -> int:
    """Start a monitor in the background (new session, stdio on /dev/null, not a session leader);
    return once it listens: 0, or 1 with its complaint on stderr."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(reader)
            os.setsid()
            if os.fork() != 0:
                os._exit(0)
            os.chdir("/")
            os.umask(0o022)
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            if null > 2:
                os.close(null)
            os.closerange(3, writer)
            os.closerange(writer + 1, 1 << 16)

            def ready(message: str) -> None:
                try:
                    os.write(writer, message.encode())
                finally:
                    os.close(writer)

            serve(root, idle_timeout, ready)
            os._exit(0)
        except BaseException:
            os._exit(1)
    os.close(writer)
    os.waitpid(pid, 0)
    chunks = []
    while True:
        chunk = os.read(reader, 4096)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(reader)
    message = b"".join(chunks).decode(errors="replace")
    if message == "ready":
        return 0
    import sys

    sys.stderr.write(f"oci-mon: the monitor did not start: {message.removeprefix('error: ') or 'it died'}\n")
    return 1


def main(argv: list[str]) -> int:
    """`python -S -c ... monitor ROOT [--idle-timeout S] [--daemonize]`: how commands start a monitor."""
    root = Root(argv[0])
    idle: float | None = IDLE_TIMEOUT
    if "--idle-timeout" in argv:
        value = float(argv[argv.index("--idle-timeout") + 1])
        idle = None if value <= 0 else value
    if "--daemonize" in argv:
        return daemonize(root, idle)
    serve(root, idle)
    return 0
