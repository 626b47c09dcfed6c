"""The monitor: one process that watches over every container of a state root.

Why one process for all: a Python process costs 8-10 MB resident, conmon 1-2 MB; one monitor
holding a hundred containers costs about what one Python process does. It is the parent of
every container's init (PR_SET_CHILD_SUBREAPER: the runtime's `run --detach` exits, its init
is reparented here), so it reaps them and learns their exit status; it reads their output
(oci.monitor.stdio) in one epoll loop (oci.monitor.loop), drives the runtime without waiting
on it, answers clients (oci.monitor.server, oci.monitor.operations), and keeps each
container's record on disk (oci.monitor.record); oci.monitor.service runs it as a process.

What it risks, and how that is bounded:

* The monitor dying (killed, crashed) does not stop the containers: their stdout and stderr
  are FIFOs they hold read-write, so a write never meets a closed pipe; output waits in the
  pipe until a monitor reads again. Records on disk are whole (atomic replace). `oci-mon ps`
  tells such containers as unmonitored; the next monitor adopts them (oci.monitor.adoption):
  it checks each recorded pid and its start time, watches it through a pidfd and reads the
  same FIFOs again. It is not
  their parent, so the exit code of an adopted container is unknown. A terminal container
  loses its pty master with the monitor (the kernel hangs its terminal up) and an interactive
  one its stdin: as under conmon.
* A slow runtime never blocks the loop: runtime commands are children like the containers,
  and their end is an event. A full log disk drops records (counted, recorded, warned), never
  blocks a container.
"""

from __future__ import annotations

import fcntl
import os
import signal
import time

from oci.errors import Conflict, OciError
from oci.monitor import adoption, crilog, events, oom, policy, proto, record, times
from oci.monitor.loop import Loop
from oci.monitor.paths import Root
from oci.monitor.runtimes import Runtime, last_error
from oci.monitor.stdio import ContainerIO
from oci.monitor.watched import Watched, decode_status, start_time
from oci.runtime.state import write_atomic

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

    from oci.monitor.server import Conn, Server

IDLE_TIMEOUT = 30.0  # a monitor started on demand leaves this long after its last container stopped
LOG_MAX = 1 << 20


class Monitor:
    """Every container of a root, their records and events."""

    def __init__(self, root: Root, operations: Callable[[Monitor], dict[str, Callable[[Conn, dict[str, Any]], None]]],
                 idle_timeout: float | None = IDLE_TIMEOUT, echo: bool = False) -> None:
        """`operations(monitor)`: the requests it answers, by name (oci.monitor.operations.bind)."""
        from oci.monitor.server import Server

        self.echo = echo  # its messages on stderr too (in the foreground, for an init system's journal)
        self.root = root
        self.idle_timeout = idle_timeout
        self.loop = Loop(lambda message: self.say("error", message))
        self.server: Server = Server(self.loop, operations(self), lambda message: self.say("error", message))
        self.containers: dict[str, Watched] = {}
        self.events = events.EventLog(root.events)
        self.boot = record.boot_id()
        self.idle_since: float | None = None
        self.devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        self.lock_fd = -1

    # ---- start-up, the loop, the end -----------------------------------------------------------

    def open(self) -> None:
        """Take the root's lock, become the subreaper, listen, and adopt what earlier monitors left."""
        self.root.make()
        os.chmod(self.root.path, 0o700)
        self.lock_fd = os.open(self.root.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + 5  # a monitor that is leaving lets go of it soon
        while True:
            try:
                fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(self.lock_fd)
                    self.lock_fd = -1
                    raise Conflict(f"a monitor already runs for {self.root.path}") from None
                time.sleep(0.05)
        from oci.linux.kernel import PR_SET_CHILD_SUBREAPER, kernel

        kernel().prctl(PR_SET_CHILD_SUBREAPER, 1)
        self.loop.open()
        self.server.open(self.root.socket)

        write_atomic(self.root.pidfile, (f'{{"pid": {os.getpid()}, "startTime": {start_time(os.getpid()) or 0}, '
                                         f'"started": "{times.now()}"}}\n').encode(), 0o600)
        self.say("info", f"monitor {os.getpid()} started for {self.root.path}")
        adoption.adopt_all(self)

    def serve(self) -> None:
        try:
            self.loop.run(self._idle_left)
        finally:
            self.close()

    def _idle_left(self) -> float | None:
        """Seconds until an idle monitor leaves (None: it is busy, or never leaves)."""
        if self.idle_timeout is None:
            return None
        if (self.loop.children or self.server.conns or
                any(w.phase != "exited" or w.deleting for w in self.containers.values())):
            self.idle_since = None
            return None
        now = time.monotonic()
        if self.idle_since is None:
            self.idle_since = now
        left = self.idle_since + self.idle_timeout - now
        if left <= 0:
            self.say("info", "no container to watch: leaving")
            self.loop.quit = True
        return max(0.0, left)

    def close(self) -> None:
        """Stop listening and release the lock; running containers go on, unmonitored."""
        self.server.close()
        try:
            with open(self.root.pidfile, "rb") as f:
                if proto.decode(f.read()).get("pid") == os.getpid():
                    os.unlink(self.root.pidfile)
        except (OSError, ValueError, AttributeError):
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

    # ---- what it writes: its log, events, records ------------------------------------------------

    def say(self, level: str, message: str) -> None:
        """A line in ROOT/monitor.log (rotated to monitor.log.1 past 1 MiB)."""
        line = f"{times.now()} {level}: {message}\n".encode()
        if self.echo:
            try:
                os.write(2, f"oci-mon monitor: {level}: {message}\n".encode())
            except OSError:
                pass
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
                self.loop.after(1.0, lambda: self._save_again(w))
            w.dirty = True
            return
        w.dirty = False

    def _save_again(self, w: Watched) -> None:
        if w.dirty and self.containers.get(w.id) is w:
            w.dirty = False
            self.save(w)

    # ---- containers ----------------------------------------------------------------------------

    def add(self, rec: dict[str, Any]) -> Watched:
        w: Watched
        io = ContainerIO(self.loop, self.root.container(rec["id"]), lambda stream, data: self.output(w, stream, data),
                         lambda message: self.say("warning", f"{rec['id']}: {message}"))
        w = Watched(rec, io)
        self.containers[w.id] = w
        return w

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

    def launch(self, w: Watched, done: Callable[[OciError | None], None]) -> None:
        """Create and start the container with one `runtime run --detach` (one runtime start-up fewer than create
        and start, for the same work); `done(None)` once it runs, `done(error)` if not."""
        if w.deleting:
            w.after_delete.append(lambda: self.launch(w, done))
            return
        cfg = w.config
        w.phase = "creating"
        w.early_exit = None
        self._enough_fds()
        ends: list[int] = []
        try:
            if w.writer is None:
                log = cfg["log"]
                os.makedirs(os.path.dirname(log["path"]), mode=0o700, exist_ok=True)
                w.writer = crilog.LogWriter(log["path"], log["maxSize"], log["maxFiles"])
            w.log_offset = self._runtime_log_size(w)
            pidfile = self.root.runtime_pidfile(w.id)
            try:
                os.unlink(pidfile)
            except FileNotFoundError:
                pass
            stdin = self.devnull
            if cfg["interactive"] and not cfg["tty"]:
                stdin = w.io.open_stdin()
                ends.append(stdin)
            console = None
            if cfg["tty"]:
                console = w.io.listen_console(self.root.console_socket(w.id))
                out = self._runtime_output(w)
                ends.append(out)
                stdio = (stdin, out, out)
            else:
                writers = w.io.open_fifos()
                ends += writers
                stdio = (stdin, writers[0], writers[1])
            argv = self.runtime(w).run(w.id, cfg["bundle"], pidfile, console)
            self.loop.spawn(argv, stdio, lambda status: self._launched(w, status, done))
        except OSError as err:
            w.io.close()
            w.phase = "exited"
            done(OciError(f"cannot create the container: {err.strerror or err}: "
                          f"{getattr(err, 'filename', '') or cfg['runtime']['path']}"))
        finally:
            for fd in ends:
                os.close(fd)

    def _runtime_log_size(self, w: Watched) -> int:
        """Where this run's messages of the runtime's --log begin (a log past 1 MiB starts again)."""
        path = self.root.runtime_log(w.id)
        try:
            size = os.stat(path).st_size
        except OSError:
            return 0
        if size > LOG_MAX:
            os.truncate(path, 0)
            return 0
        return size

    def _enough_fds(self) -> None:
        """Raise the soft RLIMIT_NOFILE when the watched descriptors near it. Not before: the runtime
        inherits it, and runc starts measurably slower with a high one."""
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if len(self.loop.handlers) + 16 > soft * 3 // 4 and soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, soft * 4), hard))

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
        if w.config["tty"] and not w.io.got_terminal:
            w.io.accept_console()
            if not w.io.got_terminal:
                self._abort(w, "the runtime sent no terminal to the console socket", done, pid)
                return
        w.io.close_console()
        w.pid, w.child = pid, True
        w.early_exit = self.loop.claim(pid, lambda status: self.exited(w, status))
        cgroup = oom.memory_cgroup(pid)
        w.oom_base = oom.oom_kills(cgroup)
        w.state.update(status="running", pid=pid, pidStartTime=start_time(pid) or 0, bootId=self.boot,
                       startedAt=times.now(), finishedAt=None, exitCode=None, signal=None, oomKilled=False, error="",
                       monitorPid=os.getpid(), adopted=False, cgroupMemory=cgroup, oomKillsAtStart=w.oom_base or 0)
        w.phase = "running"
        w.started = time.monotonic()
        self.save(w)
        self.event(w, "start")
        done(None)
        if w.early_exit is not None:  # it ended before the runtime did
            self.exited(w, w.early_exit)

    def _abort(self, w: Watched, message: str, done: Callable[[OciError | None], None], pid: int = 0) -> None:
        """A start that failed: kill what it left, delete it in the runtime, report."""
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)  # not reaped yet (nobody claimed it): still ours
            except ProcessLookupError:
                pass
        w.pid, w.child = 0, False
        w.io.close()
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
            self.loop.spawn(self.runtime(w).delete(w.id), (self.devnull, out, out),
                            lambda status: self._deleted(w, status))
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

    def output(self, w: Watched, stream: str, data: bytes) -> None:
        """What the container wrote: to its log, and to whoever is attached."""
        writer = w.writer
        if writer is not None:
            episode = writer.episode
            if writer.write(stream, data):
                if not episode:
                    self.say("warning", f"{w.id}: cannot write its log ({writer.failure}): dropping log lines")
            elif episode:
                self._report_dropped(w, episode, writer.failure)
        frame = proto.frame(b"o" if stream == "stdout" else b"e", data)
        for conn in list(w.attached):
            self.server.send(conn, frame, droppable=True)

    def _report_dropped(self, w: Watched, count: int, reason: str) -> None:
        self.say("warning", f"{w.id}: {count} log lines were dropped ({reason})")
        w.state["logDropped"] = w.state.get("logDropped", 0) + count
        self.event(w, "log-dropped", dropped=str(count))
        self.save(w)

    def signal(self, w: Watched, signum: int) -> None:
        try:
            if w.child and w.pid:
                os.kill(w.pid, signum)  # our child stays ours until we reap it: the pid cannot be reused
            elif w.pidfd >= 0:
                signal.pidfd_send_signal(w.pidfd, signum)
        except ProcessLookupError:
            pass

    def stop(self, w: Watched, timeout: int, then: Callable[[int | None], None]) -> None:
        """Its stop signal, SIGKILL after `timeout` seconds; `then(exit code)` once it has ended. A container
        stopped so is not restarted."""
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
            w.kill_timer = self.loop.after(timeout, force)

    # ---- the end of a container ----------------------------------------------------------------

    def exited(self, w: Watched, status: int) -> None:
        """Its init was reaped (its status known)."""
        if w.phase == "creating":
            w.early_exit = status
            return
        code, sig = decode_status(status)
        self.finish(w, code, sig)

    def finish(self, w: Watched, code: int | None, sig: str | None, error: str = "") -> None:
        """Record the exit, tell whoever waits, delete it in the runtime, then restart or remove it."""
        if w.pid:
            self.loop.release(w.pid)
        w.io.drain()
        w.io.close()
        if w.pidfd >= 0:
            self.loop.unwatch(w.pidfd)
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
        elif w.removing is None and w.config.get("autoRemove"):
            w.removing = []  # --rm: gone once it has ended
        w.phase = "restarting" if restart else "exited"
        st["status"] = "removing" if w.removing is not None else w.phase
        self.save(w)
        if oomed:
            self.event(w, "oom")
        self.event(w, "die", exitCode="" if code is None else str(code))
        callbacks, w.on_exit = w.on_exit, []
        for callback in callbacks:
            callback(code)
        for conn in list(w.attached):
            self.server.end(conn, proto.frame(b"x", b"" if code is None else str(code).encode()))
            self.detached(w, conn)
        if w.removing is not None:
            self.delete(w, lambda: self.remove(w))
        else:
            self.delete(w, (lambda: self.schedule_restart(w)) if restart else None)

    def detached(self, w: Watched, conn: Conn) -> None:
        if conn in w.attached:
            w.attached.remove(conn)
            if w.id in self.containers:
                self.event(w, "detach")

    def schedule_restart(self, w: Watched) -> None:
        if w.phase != "restarting":
            return
        delay = w.restart_delay - (time.monotonic() - w.exited_at)
        w.restart_timer = self.loop.after(delay, lambda: self.restart_now(w))

    def restart_now(self, w: Watched) -> None:
        w.restart_timer = None
        if w.phase != "restarting":
            return
        w.state["restartCount"] += 1
        self.event(w, "restart", restartCount=str(w.state["restartCount"]))

        def done(err: OciError | None) -> None:
            if err is not None:  # as if it had ended at once: the policy and its back-off go on
                self.say("error", f"{w.id}: restart failed: {err.message}")
                w.started = 0.0
                w.phase = "running"
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
            except FileNotFoundError:
                pass
            except IsADirectoryError:
                import shutil

                shutil.rmtree(os.path.join(folder, name), ignore_errors=True)
        try:
            os.rmdir(folder)
        except OSError as err:
            self.say("warning", f"{w.id}: cannot remove {folder}: {err.strerror}")
        self.containers.pop(w.id, None)
        self.event(w, "destroy")
        callbacks, w.removing = w.removing or [], None
        for callback in callbacks:
            callback()
