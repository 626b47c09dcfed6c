"""The managed /etc/hosts of connected containers: names and aliases of a network's members.

Each network owns one block of a container's hosts file, between `# oci-net NETWORK begin`
and `# oci-net NETWORK end`; lines outside the blocks (localhost, the container's own
hostname written by oci-bundle) are kept as they are. The file is bind-mounted into the
container, so it is rewritten in place (truncate and write, under an flock on the file
itself), never replaced by a rename, which would leave the container with the old inode.
"""

from __future__ import annotations

import fcntl
import os
import re
from typing import Iterable

from oci.errors import InvalidInput

BASE = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
NAME_RE = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*$")


def check_name(name: str) -> str:
    """A host name or alias fit for a hosts file (labels of letters, digits, '-', '_')."""
    if not NAME_RE.match(name):
        raise InvalidInput(f"bad container name or alias {name!r} (letters, digits, '-', '_', dot-separated)")
    return name


def render_block(network: str, entries: Iterable[tuple[str, list[str]]]) -> str:
    """The network's block: one `ADDRESS\tNAME ALIAS...` line per member that has a name."""
    lines = [f"# oci-net {network} begin"]
    lines += [f"{address}\t{' '.join(names)}" for address, names in entries if names]
    lines.append(f"# oci-net {network} end")
    return "\n".join(lines) + "\n"


def replace_block(text: str, network: str, block: str | None) -> str:
    """`text` with the network's block replaced by `block` (appended if absent, removed if None)."""
    begin, end = f"# oci-net {network} begin", f"# oci-net {network} end"
    out, inside, placed = [], False, False
    for line in text.splitlines(keepends=True):
        stripped = line.rstrip("\n")
        if stripped == begin:
            inside = True
            continue
        if inside:
            if stripped == end:
                inside = False
                if block is not None and not placed:
                    out.append(block)
                    placed = True
            continue
        out.append(line if line.endswith("\n") else line + "\n")
    if block is not None and not placed:
        out.append(block)
    return "".join(out)


def update(path: str, network: str, entries: Iterable[tuple[str, list[str]]] | None) -> None:
    """Rewrite the network's block of the hosts file at `path` in place (None removes it)."""
    block = None if entries is None else render_block(network, entries)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with os.fdopen(os.dup(fd), "r+", encoding="utf-8") as f:
            text = f.read() or BASE
            new = replace_block(text, network, block)
            if new != text:
                f.seek(0)
                f.write(new)
                f.truncate()
                f.flush()
                os.fsync(f.fileno())
    finally:
        os.close(fd)

