"""The container's terminal: a pty made inside the container, its master handed out with SCM_RIGHTS."""

from __future__ import annotations

import _socket
import array
import fcntl
import os
import select
import socket
import struct
import termios
import tty

from oci.linux.kernel import kernel
from oci.linux.mountopts import MS_BIND

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def open_console(console_size: dict[str, int] | None) -> tuple[int, int]:
    """(master, slave) of a new pty from the container's /dev/ptmx, slave bound onto /dev/console."""
    master, slave = os.openpty()
    os.set_inheritable(master, False)
    name = os.ttyname(slave)
    if not os.path.exists("/dev/console"):
        os.close(os.open("/dev/console", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
    kernel().mount(name, "/dev/console", None, MS_BIND)
    if console_size:
        set_size(master, console_size.get("height", 0), console_size.get("width", 0))
    return master, slave


def set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def make_controlling(slave: int) -> None:
    """Start a session with `slave` as the controlling terminal and stdio."""
    os.setsid()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)


def send_master(sock_fd: int, master: int) -> None:
    """Send the pty master over the connected console socket (runc's protocol: name + SCM_RIGHTS)."""
    sock = socket.socket(fileno=sock_fd)
    try:
        socket.send_fds(sock, [b"/dev/ptmx"], [master])
    finally:
        sock.close()


def receive_master(sock: _socket.socket) -> int:
    """The pty master sent by send_master (over a `_socket` socket, which oci-run keeps to: `socket`
    costs its enums; what socket.recv_fds does, on the plain socket)."""
    fds = array.array("i")
    _, ancillary, _, _ = sock.recvmsg(4096, _socket.CMSG_SPACE(fds.itemsize))
    for level, kind, data in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    if not fds:
        raise OSError("console: no file descriptor received")
    return fds[0]


def take_master(pair: tuple[_socket.socket, _socket.socket] | None) -> int | None:
    """The pty master of a process started with `pair`'s second socket as its console socket (None
    without a pair): our end of the pair receives it, and both ends are closed."""
    if pair is None:
        return None
    ours, theirs = pair
    theirs.close()
    try:
        return receive_master(ours)
    finally:
        ours.close()


def copy_size(tty_fd: int, master: int) -> None:
    """Give the container's pty the window size of our terminal."""
    try:
        size = fcntl.ioctl(tty_fd, termios.TIOCGWINSZ, array.array("H", [0, 0, 0, 0]).tobytes())
        fcntl.ioctl(master, termios.TIOCSWINSZ, size)
    except OSError:
        pass


def proxy(master: int) -> None:
    """Copy stdin to the pty and the pty to stdout until the container's output ends."""
    saved: Any = None
    if os.isatty(0):
        saved = termios.tcgetattr(0)
        tty.setraw(0)
        copy_size(0, master)
    try:
        watch = [master, 0]
        while True:
            ready, _, _ = select.select(watch, [], [])
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    data = b""
                if not data:
                    break
                os.write(1, data)
            if 0 in ready:
                data = os.read(0, 65536)
                if not data:
                    watch = [master]
                else:
                    os.write(master, data)
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
