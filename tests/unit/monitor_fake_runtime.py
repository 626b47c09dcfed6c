"""A stand-in for a runc-compatible runtime, for oci-mon's unit tests without root: `run --detach`
forks the bundle's process.args (no namespaces, no cgroup) and leaves it to whoever reaps orphans;
with --console-socket it makes a pty and sends the master as runc does; `delete --force` kills and
forgets. Errors go to --log as JSON lines, as runc writes them."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import sys
import termios


def fail(log: str | None, message: str) -> None:
    if log:
        with open(log, "a") as f:
            f.write(json.dumps({"level": "error", "msg": message}) + "\n")
    sys.stderr.write(message + "\n")
    sys.exit(1)


def main(args: list[str]) -> None:
    root, log = "/tmp/fake-runtime", None
    while args and args[0].startswith("--"):
        flag, value = args[0], args[1]
        args = args[2:]
        if flag == "--root":
            root = value
        elif flag == "--log":
            log = value
    verb, args = args[0], args[1:]
    container_id = args[-1]
    folder = os.path.join(root, container_id)
    if verb == "run":
        options = {args[i]: args[i + 1] for i in range(len(args) - 1) if args[i] in (
            "--bundle", "--pid-file", "--console-socket")}
        with open(os.path.join(options["--bundle"], "config.json")) as f:
            process = json.load(f)["process"]
        os.makedirs(root, exist_ok=True)
        try:
            os.mkdir(folder)
        except FileExistsError:
            fail(log, f"container {container_id} exists")
        master = slave = -1
        if "--console-socket" in options:
            master, slave = os.openpty()
        pid = os.fork()
        if pid == 0:
            if slave >= 0:
                os.setsid()
                fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
                for fd in (0, 1, 2):
                    os.dup2(slave, fd)
            try:
                os.execvp(process["args"][0], process["args"])
            finally:
                os._exit(127)
        if master >= 0:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(options["--console-socket"])
            socket.send_fds(sock, [b"/dev/ptmx"], [master])
            sock.close()
        with open(os.path.join(folder, "pid"), "w") as f:
            f.write(str(pid))
        with open(options["--pid-file"], "w") as f:
            f.write(str(pid))
    elif verb == "delete":
        try:
            with open(os.path.join(folder, "pid")) as f:
                os.kill(int(f.read()), signal.SIGKILL)
        except (OSError, ValueError):
            pass
        for name in ("pid",):
            try:
                os.unlink(os.path.join(folder, name))
            except FileNotFoundError:
                pass
        try:
            os.rmdir(folder)
        except FileNotFoundError:
            pass
    else:
        fail(log, f"fake runtime: no verb {verb}")


if __name__ == "__main__":
    main(sys.argv[1:])
