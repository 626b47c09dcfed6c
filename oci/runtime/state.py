"""The state store under --root: one directory per container holding its record and exec.sock.

The record (`state.marshal`) is written atomically; changes happen under the container
directory's lock. It is private to oci-run (engines read `oci-run state`, which prints
JSON), so it is a marshal'd dict: json, and the re it imports, would cost every verb
more than reading the record does. The status is not stored but derived: a dead or
recycled pid is `stopped`, an init still waiting on exec.sock is `created`, anything
else `running`.
"""

from __future__ import annotations

import marshal
import os

from oci import RUNTIME_SPEC_VERSION
from oci.errors import Conflict, InvalidInput, NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT_ROOT = "/run/oci-run"
_ID_PUNCTUATION = set("_+-.")
RECORD = "state.marshal"


def check_id(container_id: str) -> str:
    """Refuse ids that are empty, too long or could name another path."""
    if (not container_id or len(container_id) > 1024 or container_id in (".", "..")
            or not all(c.isalnum() or c in _ID_PUNCTUATION for c in container_id)):
        raise InvalidInput(f"invalid container id format: {container_id!r}")
    return container_id


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (start time in ticks), or None if the pid is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = data[data.rindex(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def write_atomic(path: str, data: bytes, mode: int = 0o644) -> None:
    """Replace `path` with `data`: a temporary beside it, fsync, rename, fsync of the folder.

    oci.fsutil.write_atomic does the same through tempfile, whose import (shutil, random,
    bz2, lzma, ...) costs more than the write on a runtime's start path.
    """
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".tmp-{os.path.basename(path)}-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


FREEZER_LINK = "freezer"  # written by oci.runtime.control.pause: the path of the container's freezer file


class Container:
    """One container's record: what `state` prints plus what later verbs need."""

    def __init__(self, id: str, bundle: str, pid: int = 0, start_time: int = 0, created: str = "",  # noqa: A002
                 annotations: dict[str, str] | None = None, rootfs: str = "", cgroup_path: str = "",
                 hooks: dict[str, Any] | None = None, owner: str = "",
                 oci_version: str = RUNTIME_SPEC_VERSION, directory: str = "") -> None:
        self.id, self.bundle, self.pid, self.start_time, self.created = id, bundle, pid, start_time, created
        self.annotations = annotations or {}
        self.rootfs, self.cgroup_path, self.hooks = rootfs, cgroup_path, hooks or {}
        self.owner, self.oci_version, self.directory = owner, oci_version, directory
        self.terminal = False  # process.terminal, known to the `create` that made it (not stored)

    @property
    def fifo(self) -> str:
        return os.path.join(self.directory, "exec.sock")

    def alive(self) -> bool:
        return self.pid > 0 and process_start_time(self.pid) == self.start_time

    def status(self) -> str:
        if not self.alive():
            return "stopped"
        if self.paused():
            return "paused"
        return "created" if os.path.exists(self.fifo) else "running"

    def paused(self) -> bool:
        """Whether `pause` froze it: pause left FREEZER_LINK naming the freezer file (one failed open if not)."""
        try:
            with open(os.path.join(self.directory, FREEZER_LINK)) as f:
                freezer = f.read()
            with open(freezer) as f:
                return f.read().strip() in ("FROZEN", "1")
        except OSError:
            return False

    def spec_state(self, status: str | None = None) -> dict[str, Any]:
        """The runtime spec's state object (what hooks read on stdin)."""
        status = status or self.status()
        state: dict[str, Any] = {"ociVersion": self.oci_version, "id": self.id, "status": status}
        if status != "stopped":
            state["pid"] = self.pid
        state["bundle"] = self.bundle
        if self.annotations:
            state["annotations"] = self.annotations
        return state

    def runc_state(self) -> dict[str, Any]:
        """runc's `state` JSON shape."""
        status = self.status()
        return {"ociVersion": self.oci_version, "id": self.id, "pid": self.pid if status != "stopped" else 0,
                "status": status, "bundle": self.bundle, "rootfs": self.rootfs, "created": self.created,
                "annotations": self.annotations or {}, "owner": self.owner}

    def to_record(self) -> bytes:
        """The stored form: the fields as a marshal'd dict (what `StateStore.load` reads back)."""
        return marshal.dumps({k: v for k, v in self.__dict__.items() if k not in ("directory", "terminal")})


RECORD_FIELDS = frozenset(("id", "bundle", "pid", "start_time", "created", "annotations", "rootfs", "cgroup_path",
                           "hooks", "owner", "oci_version"))


class StateStore:
    """The --root directory."""

    def __init__(self, root: str = DEFAULT_ROOT) -> None:
        self.root = os.path.abspath(root)

    def path(self, container_id: str) -> str:
        return os.path.join(self.root, check_id(container_id))

    def reserve(self, container_id: str) -> str:
        """Create the container's directory; Conflict if the id is taken."""
        os.makedirs(self.root, mode=0o711, exist_ok=True)
        folder = self.path(container_id)
        try:
            os.mkdir(folder, 0o711)
        except FileExistsError:
            raise Conflict(f"container with id exists: {container_id}") from None
        return folder

    def save(self, container: Container) -> None:
        write_atomic(os.path.join(container.directory, RECORD), container.to_record(), 0o600)

    def load(self, container_id: str) -> Container:
        folder = self.path(container_id)
        try:
            with open(os.path.join(folder, RECORD), "rb") as f:
                record = marshal.loads(f.read())
            if not record.keys() <= RECORD_FIELDS:  # written by another version: what it adds is ignored
                record = {key: value for key, value in record.items() if key in RECORD_FIELDS}
            return Container(directory=folder, **record)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"container {container_id} does not exist") from None
        except (EOFError, ValueError, TypeError, AttributeError):
            raise NotFound(f"container {container_id} does not exist (unreadable state)") from None

    def lock(self, container_id: str) -> ContainerLock:
        folder = self.path(container_id)
        if not os.path.isdir(folder):
            raise NotFound(f"container {container_id} does not exist")
        return ContainerLock(os.path.join(folder, ".lock"))

    def remove(self, container_id: str) -> None:
        """Remove the container's directory (its files are flat: no tree walk needed)."""
        folder = self.path(container_id)
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            return
        for name in names:
            try:
                os.unlink(os.path.join(folder, name))
            except (FileNotFoundError, IsADirectoryError):
                pass
        try:
            os.rmdir(folder)
        except FileNotFoundError:
            pass

    def list(self) -> list[Container]:
        try:
            names = sorted(os.listdir(self.root))
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            try:
                found.append(self.load(name))
            except (NotFound, InvalidInput):
                continue
        return found


class ContainerLock:
    """An exclusive flock on the container's lock file, held for a `with` block."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> ContainerLock:
        import fcntl

        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)
