"""Named volumes: folders under the state root that containers share, as Docker's `local` driver keeps them.

`volumes/NAME/_data` is what containers bind-mount; `volumes/NAME/volume.json` records
the name, labels and creation time. A new (empty) volume mounted over a directory of the
image is first filled with that directory's contents, owner and mode, as Docker does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
from typing import Any

from oci.errors import Conflict, InvalidInput, NotFound
from oci.fsutil import locked, write_atomic

from .containers import now

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
DATA = "_data"


def check_name(name: str) -> str:
    if not NAME_RE.match(name) or len(name) > 255:
        raise InvalidInput(f'create {name}: "{name}" includes invalid characters for a local volume name, '
                           "only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return name


class VolumeStore:
    """The volumes of a state root."""

    def __init__(self, path: str) -> None:
        self.path = path

    def _dir(self, name: str) -> str:
        return os.path.join(self.path, name)

    def data(self, name: str) -> str:
        return os.path.join(self._dir(name), DATA)

    def create(self, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
        """Make the volume (an existing one is returned as it is, as `docker volume create` does)."""
        check_name(name)
        os.makedirs(self.path, mode=0o700, exist_ok=True)
        with locked(os.path.join(self.path, ".lock")):
            try:
                return self.inspect(name)
            except NotFound:
                pass
            folder = self._dir(name)
            os.makedirs(os.path.join(folder, DATA), mode=0o755, exist_ok=True)
            doc = {"CreatedAt": now()[:19] + "Z", "Driver": "local", "Labels": labels or {},
                   "Mountpoint": self.data(name), "Name": name, "Options": {}, "Scope": "local"}
            write_atomic(os.path.join(folder, "volume.json"), json.dumps(doc, indent=2).encode() + b"\n", 0o600)
            return doc

    def inspect(self, name: str) -> dict[str, Any]:
        try:
            with open(os.path.join(self._dir(name), "volume.json"), "rb") as f:
                doc = json.loads(f.read())
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"get {name}: no such volume") from None
        except ValueError:
            raise InvalidInput(f"{self._dir(name)}/volume.json: not valid JSON") from None
        return doc

    def names(self) -> list[str]:
        try:
            entries = sorted(os.listdir(self.path))
        except FileNotFoundError:
            return []
        return [n for n in entries if os.path.isfile(os.path.join(self.path, n, "volume.json"))]

    def remove(self, name: str, users: list[str]) -> None:
        """Delete the volume and its data; Conflict while containers (`users`, their IDs) mount it."""
        self.inspect(name)
        if users:
            raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
        with locked(os.path.join(self.path, ".lock")):
            folder = self._dir(name)
            os.unlink(os.path.join(folder, "volume.json"))  # from here on the volume is gone for readers
            shutil.rmtree(folder)

    def fill_from_image(self, name: str, rootfs: str, destination: str) -> None:
        """Copy the image's `destination` (inside `rootfs`) into an empty volume, with its owner and mode."""
        data = self.data(name)
        if os.listdir(data):
            return
        from oci.linux.inroot import open_in_root

        try:
            fd = open_in_root(rootfs, destination)
        except NotFound:
            return
        try:
            st = os.fstat(fd)
            if not stat.S_ISDIR(st.st_mode):
                return
            source = f"/proc/self/fd/{fd}"
            for entry in os.listdir(source):
                src, dst = os.path.join(source, entry), os.path.join(data, entry)
                if os.path.isdir(src) and not os.path.islink(src):
                    shutil.copytree(src, dst, symlinks=True, copy_function=_copy_owned)
                    _copy_tree_owners(src, dst)
                else:
                    _copy_owned(src, dst)
            os.chmod(data, stat.S_IMODE(st.st_mode))
            if os.geteuid() == 0:
                os.chown(data, st.st_uid, st.st_gid)
        finally:
            os.close(fd)


def _copy_owned(src: str, dst: str) -> None:
    """Copy one entry (a symlink as a symlink), keeping mode, times and, as root, owner."""
    st = os.lstat(src)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), dst)
    elif stat.S_ISREG(st.st_mode):
        shutil.copy2(src, dst, follow_symlinks=False)
    else:
        return  # devices, fifos and sockets are not copied into volumes
    if os.geteuid() == 0:
        os.lchown(dst, st.st_uid, st.st_gid)


def _copy_tree_owners(src: str, dst: str) -> None:
    """copytree keeps modes but not owners of directories: give them their owners."""
    if os.geteuid() != 0:
        return
    for folder, dirs, _files in os.walk(src):
        rel = os.path.relpath(folder, src)
        st = os.lstat(folder)
        os.lchown(os.path.join(dst, rel), st.st_uid, st.st_gid)
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]
