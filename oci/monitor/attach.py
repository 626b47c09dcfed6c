"""The client's side of `attach`: the terminal (or stdin) to the container, its output back.

On a terminal with a `-t` container, the local terminal goes raw (the container's pty does
the line editing), its size is sent at once and on every SIGWINCH, and the detach keys
(Docker's ctrl-p,ctrl-q by default) leave the container running. Keys that only begin the
sequence are held back and sent when the sequence breaks, as Docker does.
"""

from __future__ import annotations

import os
import select
import struct

from oci.errors import InvalidInput
from oci.monitor import proto

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"
DETACHED = -1  # what `session` returns when the user detached


def parse_keys(text: str) -> bytes:
    """Docker's --detach-keys: `ctrl-<a-z @ [ \\ ] ^ _>` or single characters, comma separated."""
    keys = bytearray()
    for item in text.split(","):
        if len(item) == 1:
            keys.append(ord(item))
        elif item.startswith("ctrl-") and len(item) == 6:
            c = item[5].lower()
            if "a" <= c <= "z":
                keys.append(ord(c) - 96)
            elif c in "@[\\]^_":
                keys.append(ord(c) - 64)
            else:
                raise InvalidInput(f"--detach-keys: unknown key {item!r}")
        else:
            raise InvalidInput(f"--detach-keys: unknown key {item!r} (ctrl-p, a, ...)")
    if not keys:
        raise InvalidInput("--detach-keys: no keys")
    return bytes(keys)


class DetachScanner:
    """Finds the detach sequence in typed input; what is not part of it passes on."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.held = 0

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(bytes to send on, whether the sequence was typed)."""
        out = bytearray()
        for byte in data:
            if byte == self.keys[self.held]:
                self.held += 1
                if self.held == len(self.keys):
                    self.held = 0
                    return bytes(out), True
                continue
            if self.held:
                out += self.keys[:self.held]
                self.held = 0
                if byte == self.keys[0]:
                    self.held = 1
                    continue
            out.append(byte)
        return bytes(out), False


def window_size(fd: int) -> bytes | None:
    """The `w` frame payload (rows, cols) of terminal `fd`."""
    import fcntl
    import termios

    try:
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    except OSError:
        return None
    return struct.pack(">HH", rows, cols)


def session(channel: proto.Channel, answer: dict[str, Any], detach_keys: bytes, in_fd: int = 0, out_fd: int = 1,
            err_fd: int = 2, sig_proxy: bool = True) -> int:
    """Proxy until the container exits (its exit code; -1 when unknown) or the user detaches (DETACHED)."""
    import signal

    tty, send_stdin = bool(answer.get("tty")), bool(answer.get("stdin"))
    local_tty = os.isatty(in_fd)
    saved: Any = None
    sock = channel.sock
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    pending_signals: list[int] = []
    old_handlers: dict[int, Any] = {}

    def on_signal(signum: int, _frame: object) -> None:
        pending_signals.append(signum)

    if tty and local_tty:
        import termios
        import tty as tty_mod

        saved = termios.tcgetattr(in_fd)
        tty_mod.setraw(in_fd)
        size = window_size(in_fd)
        if size:
            sock.sendall(proto.frame(b"w", size))
    watched: list[int] = [signal.SIGWINCH] if tty else []
    if sig_proxy and not tty:
        watched += [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2]
    old_wakeup = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    for number in watched:
        old_handlers[number] = signal.signal(number, on_signal)
    scanner = DetachScanner(detach_keys)
    frames = proto.Frames()
    frames.buffer = channel.buffer
    channel.buffer = b""
    reading_stdin = send_stdin
    try:
        for kind, payload in frames.feed(b""):
            done = _show(kind, payload, out_fd, err_fd)
            if done is not None:
                return done
        while True:
            fds = [sock.fileno(), wake_r] + ([in_fd] if reading_stdin else [])
            try:
                ready, _, _ = select.select(fds, [], [])
            except InterruptedError:
                ready = []
            if wake_r in ready:
                try:
                    while os.read(wake_r, 512):
                        pass
                except BlockingIOError:
                    pass
            while pending_signals:
                pending = pending_signals.pop(0)
                if pending == signal.SIGWINCH:
                    size = window_size(in_fd) if local_tty else None
                    if size:
                        sock.sendall(proto.frame(b"w", size))
                else:
                    sock.sendall(proto.frame(b"k", str(pending).encode()))
            if in_fd in ready:
                data = os.read(in_fd, 65536)
                if not data:
                    reading_stdin = False
                else:
                    data, detach = scanner.feed(data) if local_tty else (data, False)
                    if data:
                        sock.sendall(proto.frame(b"i", data))
                    if detach:
                        return DETACHED
            if sock.fileno() in ready:
                data = sock.recv(65536)
                if not data:
                    return -1
                for kind, payload in frames.feed(data):
                    done = _show(kind, payload, out_fd, err_fd)
                    if done is not None:
                        return done
    finally:
        for number, handler in old_handlers.items():
            signal.signal(number, handler)
        signal.set_wakeup_fd(old_wakeup)
        os.close(wake_r)
        os.close(wake_w)
        if saved is not None:
            import termios

            termios.tcsetattr(in_fd, termios.TCSADRAIN, saved)


def _show(kind: bytes, payload: bytes, out_fd: int, err_fd: int) -> int | None:
    if kind in (b"o", b"e"):
        fd = out_fd if kind == b"o" else err_fd
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view):]
        return None
    if kind == b"x":
        return int(payload) if payload.lstrip(b"-").isdigit() else -1
    return None
