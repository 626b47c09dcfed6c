"""The runc command line oci-mon drives any runtime through: oci-run, runc, crun, or a path.

Each call is `RUNTIME [--root R] --log ROOT/containers/ID/runtime.log --log-format json VERB ...`:
runc, crun and oci-run all write their errors there as JSON lines ({"level", "msg"}), which
is where containerd's shim reads them too.
"""

from __future__ import annotations

import os
import sys

from oci.errors import NotFound

KNOWN = ("oci-run", "runc", "crun")


DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def resolve(name: str, search: str | None = None, command_dir: str | None = None) -> str:
    """The absolute path of runtime `name` (oci-run, runc, crun, another name on `search`, the caller's
    $PATH, or a path; a relative path is the caller's to make absolute). oci-run is also looked for
    beside the interpreter and in `command_dir`, the caller's own folder: the venv of this ocikit."""
    if "/" in name:
        path = os.path.abspath(name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
        raise NotFound(f"--runtime: {name}: no such executable")
    folders = (search if search is not None else DEFAULT_PATH).split(":")
    if name == "oci-run":
        folders += [os.path.dirname(sys.executable), *([command_dir] if command_dir else [])]
    for folder in folders:
        path = os.path.join(folder or ".", name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return os.path.abspath(path)
    raise NotFound(f"--runtime: {name} is not installed (not found on $PATH)")


def caller() -> tuple[str, str]:
    """This process's $PATH and folder: where `resolve` looks for a runtime this process names."""
    return (os.environ.get("PATH", DEFAULT_PATH), os.path.dirname(os.path.abspath(sys.argv[0] or ".")))


class Runtime:
    """argv lists of one runtime's verbs, with its --root and --log."""

    def __init__(self, path: str, root: str | None = None, log: str | None = None) -> None:
        self.path, self.root, self.log = path, root, log

    def base(self) -> list[str]:
        argv = [self.path]
        if self.root:
            argv += ["--root", self.root]
        if self.log:
            argv += ["--log", self.log, "--log-format", "json"]
        return argv

    def run(self, container_id: str, bundle: str, pid_file: str, console_socket: str | None = None) -> list[str]:
        """`run --detach`: create and start in one call, back once the container's process runs."""
        argv = [*self.base(), "run", "--detach", "--bundle", bundle, "--pid-file", pid_file]
        if console_socket:
            argv += ["--console-socket", console_socket]
        return [*argv, container_id]

    def delete(self, container_id: str) -> list[str]:
        return [*self.base(), "delete", "--force", container_id]

    def kill(self, container_id: str, signal: str) -> list[str]:
        return [*self.base(), "kill", container_id, signal]


def last_error(log_path: str, offset: int = 0) -> str:
    """The last error the runtime wrote to its --log after `offset` ("" if none)."""
    import json  # here, not at the top: `oci-mon run` imports this module for `resolve` only

    try:
        with open(log_path, "rb") as f:
            f.seek(offset)
            data = f.read(1 << 20)
    except OSError:
        return ""
    message = ""
    for line in data.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            text = line.decode(errors="replace").strip()
            message = text or message
            continue
        if isinstance(entry, dict) and str(entry.get("level", "")).lower() in ("error", "fatal", "panic"):
            message = str(entry.get("msg", "")) or message
    return message
