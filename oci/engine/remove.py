"""Removing a container so that nothing is left: the runtime's container (its cgroup, and through
the poststop hook its network lease and port rules), any lease of a later `network connect`, the
overlay mount, the layer cache's record of it, its folder (upper layer, anonymous volumes), its name.

Each step tolerates what an earlier, interrupted removal already did, so `rm -f` can always be
run again.
"""

from __future__ import annotations

import os
import shutil

from oci.errors import Conflict, NotFound
from oci.linux.overlayfs import unmount

from . import networks, status
from .engine import Engine


def release_rootfs(engine: Engine, rootfs: str) -> None:
    """Unmount the overlay, drop its upper and work folders, and the cache's record of it."""
    from oci.unpack import overlay as ov

    unmount(rootfs)
    ov.remove_dirs(rootfs)
    engine.layer_cache().release(rootfs)


def remove(engine: Engine, cid: str, force: bool = False, volumes: bool = False, monitor=None) -> None:
    """`docker rm [-f] [-v]`: Conflict for a running container unless `force`."""
    from oci.runtime import lifecycle


    containers = engine.containers
    record = containers.load(cid)
    with containers.lock(cid):
        current = status.current(engine, record, monitor)
        if current in ("running", "paused", "restarting") and not force:
            raise Conflict(f"cannot remove container {record['Name']}: container is {current}: stop the container "
                           "before removing or force remove")
        if record.get("Monitored"):
            if monitor is None:
                from .monitor import connect

                monitor = connect(engine)
            if monitor is not None:
                monitor.remove(cid)
        store = engine.runtime_store()
        try:
            if current == "paused":
                from oci.runtime import control

                control.kill_paused(store, cid)
            lifecycle.delete(store, cid, force=True)
        except NotFound:
            store.remove(cid)  # at most leftovers of a runtime state
        networks.disconnect_all(engine.root, cid)
        folder = containers.folder(cid)
        release_rootfs(engine, os.path.join(folder, "rootfs"))
        try:
            os.unlink(os.path.join(folder, "container.json"))  # from now on the container is gone for readers
        except FileNotFoundError:
            pass
        shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)  # the lock file the block above held
    containers.release_name(record["Name"], cid)
