"""Removing images as `docker rmi` and `image prune` do, then freeing what nothing uses any more:
the layout's blobs and the layers the shared cache unpacked for them (a layer stays while a
container's overlay or another image of any state root still records it)."""

from __future__ import annotations

import os
import shutil
from typing import Any

from oci.errors import Conflict

from . import status
from .create import IMAGE_USERS
from .engine import Engine
from .images import StoredImage, check_removable, familiar, parse_reference


def users(engine: Engine, stored: StoredImage, monitor: Any = None) -> dict[str, str]:
    """Container ID -> status, of the containers made from this image."""
    found = {}
    for record in engine.containers.records():
        if record.get("ImageManifest") == str(stored.descriptor.digest) or record.get("Image") == stored.id:
            found[record["Id"]] = status.current(engine, record, monitor)
    return found


def _full_name(text: str) -> str | None:
    try:
        return str(parse_reference(text))
    except Exception:  # noqa: BLE001 -- an ID
        return None


def remove(engine: Engine, text: str, force: bool, monitor: Any = None) -> list[str]:
    """Untag or delete the image `text` names; the lines Docker prints."""
    images = engine.images
    stored = images.find(text)
    name = _full_name(text)
    by_name = name is not None and name in stored.names
    if name is not None and by_name and len(stored.names) > 1:
        images.untag(name)
        return [f"Untagged: {familiar(name)}"]
    if not by_name and len(stored.names) > 1 and not force:
        raise Conflict(f"conflict: unable to delete {stored.short_id} (must be forced) - image is referenced in "
                       "multiple repositories")
    using = users(engine, stored, monitor)
    if using:
        check_removable(stored, using, force)
    lines = [f"Untagged: {familiar(n)}" for n in stored.names]
    if using:  # forced: the names go, the image stays for its containers
        images.keep_dangling(stored)
        for n in stored.names:
            images.untag(n)
        return lines
    images.drop(stored)
    forget_layers(engine, stored)
    return lines + [f"Deleted: {stored.id}"]


def forget_layers(engine: Engine, stored: StoredImage) -> None:
    """Drop the image's record in the layer cache unless another stored image has the same config."""
    if stored.image is None:
        return
    config = stored.image.config_descriptor.digest
    if any(s.image is not None and s.image.config_descriptor.digest == config for s in engine.images.images()):
        return
    marker = os.path.join(engine.root.sub(IMAGE_USERS), config.hex)
    engine.layer_cache().release(marker)
    shutil.rmtree(marker, ignore_errors=True)


def prune(engine: Engine, every: bool, monitor: Any = None) -> list[str]:
    lines = []
    for stored in engine.images.images():
        if stored.names and not every:
            continue
        if users(engine, stored, monitor):
            continue
        lines += [f"untagged: {familiar(n)}" for n in stored.names]
        engine.images.drop(stored)
        forget_layers(engine, stored)
        lines.append(f"deleted: {stored.id}")
    return lines


def collect(engine: Engine) -> int:
    """Delete unreachable blobs and unused cached layers; the bytes freed in the layout."""
    freed = engine.images.collect()
    if os.path.isdir(engine.root.layers):
        engine.layer_cache().gc()
    return freed
