"""Idmapped bind mounts (config.md#mounts: the `idmap` and `ridmap` options, a mount's uidMappings and
gidMappings), made by the runtime before it forks the container's init.

The kernel idmaps only a detached mount (open_tree's clone), and only for a caller privileged over the
file system and over the user namespace holding the mappings: the runtime, still in the host's
namespaces. The init, maybe in a user namespace of its own by then, attaches the prepared mounts with
move_mount. The mappings come from the mount, else from the container's user namespace (a new one's
mappings, or the one it joins); a namespace with the mappings is made by a short-lived child that
unshares CLONE_NEWUSER and waits while the runtime writes its maps (as runc does).
"""

from __future__ import annotations

import os

from oci.errors import InvalidInput
from oci.linux import namespaces
from oci.linux.kernel import (
    AT_EMPTY_PATH,
    AT_RECURSIVE,
    CLONE_NEWUSER,
    MOUNT_ATTR_IDMAP,
    OPEN_TREE_CLOEXEC,
    OPEN_TREE_CLONE,
    kernel,
)
from oci.linux.mountopts import wants_idmap

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

def prepare(config: dict[str, Any], bundle: str) -> dict[int, int]:
    """Detached, idmapped copies of the config's idmapped bind mounts: mount index -> fd (close-on-exec)."""
    made: dict[int, int] = {}
    userns: dict[Any, int] = {}
    try:
        for i, mount in enumerate(config.get("mounts") or []):
            if wants_idmap(mount):
                made[i] = _tree(mount, f"/mounts/{i}", config, bundle, userns)
    except BaseException:
        for fd in made.values():
            os.close(fd)
        raise
    finally:
        for fd in userns.values():
            os.close(fd)
    return made


def _tree(mount: dict[str, Any], pointer: str, config: dict[str, Any], bundle: str, userns: dict[Any, int]) -> int:
    options = mount.get("options") or []
    if not (mount.get("type") == "bind" or "bind" in options or "rbind" in options):
        raise InvalidInput(f"{pointer}: oci-run idmaps bind mounts only")
    if bool(mount.get("uidMappings")) != bool(mount.get("gidMappings")):
        raise InvalidInput(f"{pointer}: uidMappings and gidMappings go together")
    source = mount.get("source") or ""
    if not os.path.isabs(source):
        source = os.path.join(bundle, source)
    ns_fd = _userns_for(mount, pointer, config, userns)
    flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (AT_RECURSIVE if "rbind" in options else 0)
    try:
        tree = kernel().open_tree(source, flags)
    except OSError as err:
        raise InvalidInput(f"{pointer}: {source}: {err.strerror}") from None
    try:
        recursive = AT_RECURSIVE if "ridmap" in options else 0
        kernel().mount_setattr(tree, "", AT_EMPTY_PATH | recursive, MOUNT_ATTR_IDMAP, 0, ns_fd)
    except OSError as err:
        os.close(tree)
        raise InvalidInput(f"{pointer}: cannot idmap {source}: {err.strerror}") from None
    return tree


def _userns_for(mount: dict[str, Any], pointer: str, config: dict[str, Any], userns: dict[Any, int]) -> int:
    """An fd of a user namespace with the mount's mappings (or the container's); one per distinct mapping."""
    linux = config.get("linux") or {}
    uid_maps, gid_maps = mount.get("uidMappings") or [], mount.get("gidMappings") or []
    if not uid_maps:
        user = next((ns for ns in linux.get("namespaces") or [] if ns.get("type") == "user"), None)
        if user is None:
            raise InvalidInput(f"{pointer}: idmap needs uidMappings and gidMappings: the mount has none, and the "
                               "container no user namespace")
        if user.get("path"):
            key: Any = ("path", user["path"])
            if key not in userns:
                try:
                    userns[key] = os.open(user["path"], os.O_RDONLY | os.O_CLOEXEC)
                except OSError as err:
                    raise InvalidInput(f"{pointer}: user namespace {user['path']}: {err.strerror}") from None
            return userns[key]
        uid_maps, gid_maps = linux.get("uidMappings") or [], linux.get("gidMappings") or []
    key = tuple((m["containerID"], m["hostID"], m["size"]) for m in uid_maps), \
        tuple((m["containerID"], m["hostID"], m["size"]) for m in gid_maps)
    if key not in userns:
        userns[key] = new_userns(uid_maps, gid_maps)
    return userns[key]


def new_userns(uid_maps: list[dict[str, int]], gid_maps: list[dict[str, int]]) -> int:
    """An fd of a new user namespace with these mappings: a child unshares it and waits for its maps."""
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(ready_r)
            os.close(done_w)
            kernel().unshare(CLONE_NEWUSER)
            os.write(ready_w, b"1")
            os.read(done_r, 1)
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(done_r)
    try:
        if os.read(ready_r, 1) != b"1":
            raise InvalidInput("idmap: cannot make a user namespace for the mappings")
        try:
            namespaces.write_id_maps(pid, uid_maps, gid_maps)
        except OSError as err:
            raise InvalidInput(f"idmap: cannot write the mappings: {err.strerror}") from None
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(ready_r)
        os.close(done_w)
        os.waitpid(pid, 0)
