"""AF_UNIX socket paths of any length.

sun_path holds 107 bytes and a NUL: Docker's runtime root with a 64-hex ID
(`/var/run/docker/runtime-runc/moby/ID/exec.sock`) is already one byte too long, and engines may
give a --root or --console-socket longer still. A longer path is reached through its folder,
opened O_PATH, as `/proc/self/fd/N/NAME`: the kernel follows the magic link to the folder, so
the socket is made or found exactly where the long path names it.
"""

from __future__ import annotations

import errno
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

SUN_PATH_MAX = 107  # sizeof(sun_path) - 1 for the NUL


def _through_folder(call: Callable[[str], Any], path: str) -> None:
    if len(os.fsencode(path)) <= SUN_PATH_MAX:
        call(path)
        return
    folder, name = os.path.split(path)
    fd = os.open(folder or ".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        short = f"/proc/self/fd/{fd}/{name}"
        if len(os.fsencode(short)) > SUN_PATH_MAX:
            raise OSError(errno.ENAMETOOLONG, f"{name}: socket name too long", path)
        call(short)
    finally:
        os.close(fd)


def bind(sock: Any, path: str) -> None:
    """`sock.bind(path)` for a path of any length."""
    _through_folder(sock.bind, path)


def connect(sock: Any, path: str) -> None:
    """`sock.connect(path)` for a path of any length."""
    _through_folder(sock.connect, path)
